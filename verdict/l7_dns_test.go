package verdict

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestDNSQueryName(t *testing.T) {
	long := strings.Repeat("a", 63)
	name253 := strings.Join([]string{long, long, long, strings.Repeat("b", 61)}, ".")
	// A second question whose name is a pointer to the first one's "example.com".
	comp := dnsQuery(1, "www.example.com")
	comp[5] = 2
	comp = append(comp, 3, 'a', 'p', 'i', 0xc0, 12+4, 0, 28, 0, 1)
	selfPtr := dnsQuery(1)
	selfPtr[5] = 1
	selfPtr = append(selfPtr, 0xc0, 12, 0, 1, 0, 1)
	loop := dnsQuery(1)
	loop[5] = 1
	loop = append(loop, 1, 'a', 0xc0, 12, 0, 1, 0, 1) // label then pointer back to itself
	fwd := dnsQuery(1)
	fwd[5] = 1
	fwd = append(fwd, 0xc0, 20, 0, 1, 0, 1, 0, 0, 1, 'x', 0)
	ext := dnsQuery(1)
	ext[5] = 1
	ext = append(ext, 0x41, 0, 0, 1, 0, 1)
	dot := dnsQuery(1, "a")
	dot[13] = '.'
	tests := []struct {
		name    string
		payload []byte
		tcp     bool
		want    string
		st      L7Status
	}{
		{"udp", dnsQuery(7, "Example.COM"), false, "example.com", L7Found},
		{"tcp", tcpDNS(dnsQuery(7, "www.example.org")), true, "www.example.org", L7Found},
		{"tcp two messages", append(tcpDNS(dnsQuery(7, "a.example")), tcpDNS(dnsQuery(8, "b.example"))...), true, "a.example", L7Found},
		{"root", dnsQuery(7, ""), false, "", L7Found},
		{"253 chars", dnsQuery(7, name253), false, name253, L7Found},
		{"254 chars", dnsQuery(7, name253+"b"), false, "", L7Malformed},
		{"no questions", dnsQuery(7), false, "", L7Absent},
		{"short header", []byte{1, 2, 3}, false, "", L7NotProtocol},
		{"udp cut in name", dnsQuery(7, "example.com")[:16], false, "", L7Malformed},
		{"udp cut in qtype", dnsQuery(7, "example.com")[:27], false, "", L7Malformed},
		{"tcp cut in name", tcpDNS(dnsQuery(7, "example.com"))[:18], true, "", L7NeedMore},
		{"tcp cut in header", tcpDNS(dnsQuery(7, "example.com"))[:8], true, "", L7NeedMore},
		{"tcp only prefix", []byte{0}, true, "", L7NeedMore},
		{"tcp tiny length", []byte{0, 4, 1, 2, 3, 4}, true, "", L7NotProtocol},
		{"self pointer", selfPtr, false, "", L7Malformed},
		{"pointer loop", loop, false, "", L7Malformed},
		{"forward pointer", fwd, false, "x", L7Found}, // dnsmasq and others follow it
		{"extended label", ext, false, "", L7Malformed},
		{"dot in label", dot, false, "", L7Malformed},
		{"compressed", comp, false, "www.example.com", L7Found},
	}
	buf := make([]byte, MaxNameLen)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, st := DNSQueryName(tt.payload, tt.tcp, buf[:0])
			if st != tt.st || string(name) != tt.want {
				t.Errorf("DNSQueryName = %q, %s; want %q, %s", name, st, tt.want, tt.st)
			}
		})
	}
}

func TestDNSQuestions(t *testing.T) {
	msg := dnsQuery(0x1234, "a.example", "B.example")
	// Third question: "c." + pointer to the second question's "example".
	msg[5] = 3
	second := 12 + len(dnsName("a.example")) + 4
	msg = append(msg, 1, 'c', 0xc0, byte(second+2), 0, 28, 0, 1)
	q, st := ParseDNS(msg, false)
	if st != L7Found || q.ID != 0x1234 || q.Count != 3 || q.IsResponse() || q.Opcode() != 0 {
		t.Fatalf("ParseDNS = %+v, %s", q, st)
	}
	var buf [MaxNameLen]byte
	want := []struct {
		name  string
		qtype uint16
	}{{"a.example", 1}, {"b.example", 1}, {"c.example", 28}}
	for i, w := range want {
		name, qtype, qclass, st := q.Next(buf[:])
		if st != L7Found || string(name) != w.name || qtype != w.qtype || qclass != 1 {
			t.Errorf("question %d = %q %d %d %s, want %q %d", i, name, qtype, qclass, st, w.name, w.qtype)
		}
	}
	if _, _, _, st := q.Next(buf[:]); st != L7Absent {
		t.Errorf("after last question: %s", st)
	}
	// A QDCOUNT larger than the questions present must end malformed.
	binary.BigEndian.PutUint16(msg[4:], 9)
	q, _ = ParseDNS(msg, false)
	var last L7Status
	for range 10 {
		if _, _, _, last = q.Next(buf[:]); last != L7Found {
			break
		}
	}
	if last != L7Malformed {
		t.Errorf("QDCOUNT 9 with 3 questions: %s", last)
	}
}

// TestDNSSmallBuffer checks that a buffer too small for the name fails
// cleanly instead of writing past it.
func TestDNSSmallBuffer(t *testing.T) {
	buf := make([]byte, 4)
	if name, st := DNSQueryName(dnsQuery(1, "example.com"), false, buf[:0]); st != L7Malformed {
		t.Errorf("small buffer: %q %s", name, st)
	}
}

func TestDNSAllocs(t *testing.T) {
	udp, tcp := dnsQuery(1, "www.example.com"), tcpDNS(dnsQuery(1, "www.example.com"))
	var buf [MaxNameLen]byte
	if n := testing.AllocsPerRun(100, func() {
		DNSQueryName(udp, false, buf[:0])
		DNSQueryName(tcp, true, buf[:0])
	}); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func BenchmarkDNSQueryName(b *testing.B) {
	msg := dnsQuery(1, "www.example.com")
	var buf [MaxNameLen]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, st := DNSQueryName(msg, false, buf[:0]); st != L7Found {
			b.Fatal(st)
		}
	}
}
