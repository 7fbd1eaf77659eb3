package l7

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
)

func TestTLSServerName(t *testing.T) {
	ch := pktbuild.ClientHello("WWW.Example.COM.", 0)
	twoSNI := pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt("a.example"), pktbuild.SNIExt("b.example"))), 1<<14)
	twoNames := pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.TLSExt(0, pktbuild.Vec16(append(append([]byte{0}, pktbuild.Vec16([]byte("a"))...), append([]byte{0}, pktbuild.Vec16([]byte("b"))...)...))))), 1<<14)
	noExt := pktbuild.HelloBody()
	noExt = noExt[:len(noExt)-2]
	badVec := pktbuild.ClientHello("example.com", 0)
	badVec[len(badVec)-len("example.com")-2] = 0xff // host_name length past the extension
	serverHello := pktbuild.ClientHello("example.com", 0)
	serverHello[5] = 2
	tests := []struct {
		name    string
		payload []byte
		want    string
		st      Status
	}{
		{"sni", ch, "www.example.com", Found},
		{"with padding", pktbuild.ClientHello("example.net", 300), "example.net", Found},
		{"no sni", pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.TLSExt(10, pktbuild.Vec16([]byte{0, 29})))), 1<<14), "", Absent},
		{"no extensions", pktbuild.Records(pktbuild.Handshake(noExt), 1<<14), "", Absent},
		{"two server_name extensions", twoSNI, "", Malformed},
		{"two host names", twoNames, "", Malformed},
		{"bad vector", badVec, "", Malformed},
		{"long name", pktbuild.ClientHello(strings.Repeat("a", 254), 0), "", Malformed},
		{"server hello", serverHello, "", NotProtocol},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", NotProtocol},
		{"ssl2-ish", []byte{0x80, 0x2e, 1, 3, 1}, "", NotProtocol},
		{"record length 0", []byte{22, 3, 1, 0, 0}, "", Malformed},
		{"record too long", []byte{22, 3, 1, 0x50, 0}, "", Malformed},
		{"cut", ch[:len(ch)-10], "", NeedMore},
		{"header only", ch[:3], "", NeedMore},
		{"empty", nil, "", NeedMore},
		{"split in records", pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt("x.example"))), 50), "", NeedMore},
	}
	var buf [MaxNameLen]byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, st := TLSServerName(tt.payload, buf[:0])
			if st != tt.st || string(name) != tt.want {
				t.Errorf("TLSServerName = %q, %s; want %q, %s", name, st, tt.want, tt.st)
			}
		})
	}
}

// TestTLSTruncated cuts a ClientHello at every offset: every cut must ask
// for more data and never find a name.
func TestTLSTruncated(t *testing.T) {
	ch := pktbuild.ClientHello("example.com", 0)
	var buf [MaxNameLen]byte
	for i := range len(ch) {
		if name, st := TLSServerName(ch[:i], buf[:0]); st != NeedMore {
			t.Errorf("cut at %d: %q %s", i, name, st)
		}
	}
}

func TestTLSAllocs(t *testing.T) {
	ch := pktbuild.ClientHello("www.example.com", 0)
	var buf [MaxNameLen]byte
	if n := testing.AllocsPerRun(100, func() { TLSServerName(ch, buf[:0]) }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func BenchmarkTLSServerName(b *testing.B) {
	for _, pad := range []int{0, 1500} { // 1500: a post-quantum-sized hello
		ch := pktbuild.ClientHello("www.example.com", pad)
		b.Run(fmt.Sprintf("bytes=%d", len(ch)), func(b *testing.B) {
			var buf [MaxNameLen]byte
			b.ReportAllocs()
			for b.Loop() {
				if _, st := TLSServerName(ch, buf[:0]); st != Found {
					b.Fatal(st)
				}
			}
		})
	}
}
