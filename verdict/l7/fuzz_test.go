package l7

import (
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
)

// FuzzDNS feeds arbitrary messages to the question iterator, over UDP and
// TCP framing: hostile compression pointers must end, names stay bounded.
func FuzzDNS(f *testing.F) {
	f.Add(pktbuild.DNSQuery(1, "www.example.com", "b.example"), false)
	f.Add(pktbuild.TCPDNS(pktbuild.DNSQuery(1, "example.org")), true)
	f.Add([]byte{0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, false)
	f.Fuzz(func(t *testing.T, msg []byte, tcp bool) {
		q, st := ParseDNS(msg, tcp)
		if st != Found {
			return
		}
		var buf [MaxNameLen]byte
		for i := 0; ; i++ {
			name, _, _, st := q.Next(buf[:])
			if st != Found {
				break
			}
			checkLower(t, "DNS", name)
			if i > len(msg) {
				t.Fatalf("more questions than bytes")
			}
		}
	})
}

// FuzzSNI checks that the single-payload parser and the reassembling
// buffer agree on every input, however it is cut into segments.
func FuzzSNI(f *testing.F) {
	f.Add(pktbuild.ClientHello("www.example.com", 0), uint8(100))
	f.Add(pktbuild.Records(pktbuild.Handshake(pktbuild.HelloBody(pktbuild.SNIExt("x.example"))), 9), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, seg uint8) {
		var buf [MaxNameLen]byte
		name, st := TLSServerName(b, buf[:0])
		var h HelloBuffer
		hst := feed(&h, b, 77, int(seg)+1)
		if st == Found && (hst != Found || string(h.ServerName()) != string(name)) {
			t.Fatalf("TLSServerName %q %s, HelloBuffer %q %s", name, st, h.ServerName(), hst)
		}
		if st == Absent && hst != Absent {
			t.Fatalf("TLSServerName absent, HelloBuffer %s", hst)
		}
	})
}

func FuzzHTTP(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: Example.com:80\r\n\r\n"))
	f.Add([]byte("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf [MaxNameLen]byte
		checkName(t, "HTTP", b, buf[:], func(d []byte) ([]byte, Status) { return HTTPHost(b, d) })
	})
}
