package l7

import (
	"strings"
	"testing"
)

func TestHTTPHost(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string
		st      Status
	}{
		{"get", "GET / HTTP/1.1\r\nHost: Example.COM\r\nAccept: */*\r\n\r\n", "example.com", Found},
		{"port", "POST /x HTTP/1.1\r\nhOsT:example.com:8080\r\n\r\nbody", "example.com", Found},
		{"ipv6 literal", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", "2001:db8::1", Found},
		{"ows", "GET / HTTP/1.0\r\nHost: \t example.org \t\r\n\r\n", "example.org", Found},
		{"lf only", "GET / HTTP/1.1\nHost: example.org\n\n", "example.org", Found},
		{"trailing dot", "GET / HTTP/1.1\r\nHost: example.org.\r\n\r\n", "example.org", Found},
		{"absolute form wins", "GET http://real.example:81/p HTTP/1.1\r\nHost: decoy.example\r\n\r\n", "real.example", Found},
		{"absolute form userinfo", "GET http://u:p@real.example/ HTTP/1.1\r\n\r\n", "real.example", Found},
		{"connect", "CONNECT tunnel.example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n", "tunnel.example", Found},
		{"host then cut", "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Ag", "example.com", Found},
		{"no host", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", "", Absent},
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "", Absent},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", "", Malformed},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", "", Malformed},
		{"obs-fold", "GET / HTTP/1.1\r\nX: y\r\n z\r\nHost: a.example\r\n\r\n", "", Malformed},
		{"no colon", "GET / HTTP/1.1\r\nHost a.example\r\n\r\n", "", Malformed},
		{"bad port", "GET / HTTP/1.1\r\nHost: a.example:8x\r\n\r\n", "", Malformed},
		{"space in host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "", Malformed},
		{"unclosed bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "", Malformed},
		{"long host", "GET / HTTP/1.1\r\nHost: " + strings.Repeat("a", 300) + "\r\n\r\n", "", Malformed},
		{"host after header end", "GET / HTTP/1.1\r\n\r\nHost: a.example\r\n\r\n", "", Absent},
		{"headers cut", "GET / HTTP/1.1\r\nAccept: */*\r\n", "", NeedMore},
		{"request line cut", "GET /index.ht", "", NeedMore},
		{"method prefix", "GE", "", NeedMore},
		{"empty", "", "", NeedMore},
		// Go's net/http serves "get" like "GET"; extension methods are upper case.
		{"lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", "a", Found},
		{"unknown method", "PROPFIND /x HTTP/1.1\r\nHost: b\r\n\r\n", "b", Found},
		{"method with a slash", "GE/T / HTTP/1.1\r\nHost: b\r\n\r\n", "", NotProtocol},
		{"lowercase word", "refuse-me", "", NotProtocol},
		{"lowercase method prefix", "po", "", NeedMore},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", NotProtocol},
		{"http 0.9", "GET /\r\n", "", NotProtocol},
		{"tls", "\x16\x03\x01\x02\x00\x01", "", NotProtocol},
	}
	var buf [MaxNameLen]byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, st := HTTPHost([]byte(tt.payload), buf[:0])
			if st != tt.st || string(name) != tt.want {
				t.Errorf("HTTPHost = %q, %s; want %q, %s", name, st, tt.want, tt.st)
			}
		})
	}
}

func TestHTTPAllocs(t *testing.T) {
	req := []byte("GET /index.html HTTP/1.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\nHost: www.example.com\r\n\r\n")
	var buf [MaxNameLen]byte
	if n := testing.AllocsPerRun(100, func() { HTTPHost(req, buf[:0]) }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func BenchmarkHTTPHost(b *testing.B) {
	req := []byte("GET /index.html HTTP/1.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\nHost: www.example.com\r\n\r\n")
	var buf [MaxNameLen]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, st := HTTPHost(req, buf[:0]); st != Found {
			b.Fatal(st)
		}
	}
}
