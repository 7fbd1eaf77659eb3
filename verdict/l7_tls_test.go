package verdict

import (
	"fmt"
	"strings"
	"testing"
)

func TestTLSServerName(t *testing.T) {
	ch := clientHello("WWW.Example.COM.", 0)
	twoSNI := records(handshake(helloBody(sniExt("a.example"), sniExt("b.example"))), 1<<14)
	twoNames := records(handshake(helloBody(tlsExt(0, vec16(append(append([]byte{0}, vec16([]byte("a"))...), append([]byte{0}, vec16([]byte("b"))...)...))))), 1<<14)
	noExt := helloBody()
	noExt = noExt[:len(noExt)-2]
	badVec := clientHello("example.com", 0)
	badVec[len(badVec)-len("example.com")-2] = 0xff // host_name length past the extension
	serverHello := clientHello("example.com", 0)
	serverHello[5] = 2
	tests := []struct {
		name    string
		payload []byte
		want    string
		st      L7Status
	}{
		{"sni", ch, "www.example.com", L7Found},
		{"with padding", clientHello("example.net", 300), "example.net", L7Found},
		{"no sni", records(handshake(helloBody(tlsExt(10, vec16([]byte{0, 29})))), 1<<14), "", L7Absent},
		{"no extensions", records(handshake(noExt), 1<<14), "", L7Absent},
		{"two server_name extensions", twoSNI, "", L7Malformed},
		{"two host names", twoNames, "", L7Malformed},
		{"bad vector", badVec, "", L7Malformed},
		{"long name", clientHello(strings.Repeat("a", 254), 0), "", L7Malformed},
		{"server hello", serverHello, "", L7NotProtocol},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", L7NotProtocol},
		{"ssl2-ish", []byte{0x80, 0x2e, 1, 3, 1}, "", L7NotProtocol},
		{"record length 0", []byte{22, 3, 1, 0, 0}, "", L7Malformed},
		{"record too long", []byte{22, 3, 1, 0x50, 0}, "", L7Malformed},
		{"cut", ch[:len(ch)-10], "", L7NeedMore},
		{"header only", ch[:3], "", L7NeedMore},
		{"empty", nil, "", L7NeedMore},
		{"split in records", records(handshake(helloBody(sniExt("x.example"))), 50), "", L7NeedMore},
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
	ch := clientHello("example.com", 0)
	var buf [MaxNameLen]byte
	for i := range len(ch) {
		if name, st := TLSServerName(ch[:i], buf[:0]); st != L7NeedMore {
			t.Errorf("cut at %d: %q %s", i, name, st)
		}
	}
}

func TestTLSAllocs(t *testing.T) {
	ch := clientHello("www.example.com", 0)
	var buf [MaxNameLen]byte
	if n := testing.AllocsPerRun(100, func() { TLSServerName(ch, buf[:0]) }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func BenchmarkTLSServerName(b *testing.B) {
	for _, pad := range []int{0, 1500} { // 1500: a post-quantum-sized hello
		ch := clientHello("www.example.com", pad)
		b.Run(fmt.Sprintf("bytes=%d", len(ch)), func(b *testing.B) {
			var buf [MaxNameLen]byte
			b.ReportAllocs()
			for b.Loop() {
				if _, st := TLSServerName(ch, buf[:0]); st != L7Found {
					b.Fatal(st)
				}
			}
		})
	}
}
