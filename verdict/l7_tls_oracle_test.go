package verdict

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// realClientHello returns the first TLS record a crypto/tls client sends
// for serverName: a real ClientHello (with the post-quantum key share Go
// sends by default, about 1.8 KB), captured through net.Pipe.
func realClientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		tc := tls.Client(c1, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		tc.Handshake() // fails once the pipe closes
		c1.Close()
	}()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	hdr := make([]byte, tlsRecordHeaderLen)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, tlsRecordHeaderLen+int(binary.BigEndian.Uint16(hdr[3:5])))
	copy(rec, hdr)
	if _, err := io.ReadFull(c2, rec[tlsRecordHeaderLen:]); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestTLSOracleRealHello: the server name of real ClientHellos, whole, cut
// into two TCP segments at every offset, and re-cut into two TLS records at
// every offset of the handshake message (sent as one segment and as two).
func TestTLSOracleRealHello(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "sni", Match: Match{SNI: []string{"*.blocked.test"}}, Action: ActionDrop},
	}})
	for _, name := range []string{"www.blocked.test", "www.allowed.test"} {
		rec := realClientHello(t, name)
		if len(rec) < 1000 {
			t.Logf("ClientHello of %d bytes: one segment", len(rec))
		}
		buf := make([]byte, MaxNameLen)
		if got, st := TLSServerName(rec, buf[:0]); st != L7Found || string(got) != name {
			t.Fatalf("whole hello: %q %s", got, st)
		}
		hs := rec[tlsRecordHeaderLen:]
		blocked := name == "www.blocked.test"
		p := NewPipeline(c, nil)
		port := uint16(1)
		check := func(what string, segs ...[]byte) {
			t.Helper()
			port++
			ds := dial(p, tc4, ts4, port, 443).sendAll(segs...)
			if passed(ds) == blocked {
				t.Fatalf("%s %s: %+v", what, name, ds)
			}
			if d := ds[len(ds)-1]; d.Rule == RulePending || d.Rule == RuleUndecided {
				t.Fatalf("%s %s: not decided by a rule: %+v", what, name, d)
			}
		}
		for cut := 1; cut < len(rec); cut++ {
			check("segments cut at "+itoa(cut), rec[:cut], rec[cut:])
			var h HelloBuffer
			h.Add(7, rec[:cut])
			if st := h.Add(7+uint32(cut), rec[cut:]); st != L7Found || string(h.ServerName()) != name {
				t.Fatalf("HelloBuffer cut at %d: %q %s", cut, h.ServerName(), st)
			}
		}
		for cut := 1; cut < len(hs); cut++ {
			two := append(records(hs[:cut], 1<<14), records(hs[cut:], 1<<14)...)
			check("records cut at "+itoa(cut), two)
			check("records cut at "+itoa(cut)+", segment at the record boundary", two[:tlsRecordHeaderLen+cut], two[tlsRecordHeaderLen+cut:])
		}
	}
}
