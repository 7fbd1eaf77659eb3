package l7

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
)

func TestDNSQueryName(t *testing.T) {
	long := strings.Repeat("a", 63)
	name253 := strings.Join([]string{long, long, long, strings.Repeat("b", 61)}, ".")
	// A second question whose name is a pointer to the first one's "example.com".
	comp := pktbuild.DNSQuery(1, "www.example.com")
	comp[5] = 2
	comp = append(comp, 3, 'a', 'p', 'i', 0xc0, 12+4, 0, 28, 0, 1)
	selfPtr := pktbuild.DNSQuery(1)
	selfPtr[5] = 1
	selfPtr = append(selfPtr, 0xc0, 12, 0, 1, 0, 1)
	loop := pktbuild.DNSQuery(1)
	loop[5] = 1
	loop = append(loop, 1, 'a', 0xc0, 12, 0, 1, 0, 1) // label then pointer back to itself
	fwd := pktbuild.DNSQuery(1)
	fwd[5] = 1
	fwd = append(fwd, 0xc0, 20, 0, 1, 0, 1, 0, 0, 1, 'x', 0)
	ext := pktbuild.DNSQuery(1)
	ext[5] = 1
	ext = append(ext, 0x41, 0, 0, 1, 0, 1)
	dot := pktbuild.DNSQuery(1, "a")
	dot[13] = '.'
	tests := []struct {
		name    string
		payload []byte
		tcp     bool
		want    string
		st      Status
	}{
		{"udp", pktbuild.DNSQuery(7, "Example.COM"), false, "example.com", Found},
		{"tcp", pktbuild.TCPDNS(pktbuild.DNSQuery(7, "www.example.org")), true, "www.example.org", Found},
		{"tcp two messages", append(pktbuild.TCPDNS(pktbuild.DNSQuery(7, "a.example")), pktbuild.TCPDNS(pktbuild.DNSQuery(8, "b.example"))...), true, "a.example", Found},
		{"root", pktbuild.DNSQuery(7, ""), false, "", Found},
		{"253 chars", pktbuild.DNSQuery(7, name253), false, name253, Found},
		{"254 chars", pktbuild.DNSQuery(7, name253+"b"), false, "", Malformed},
		{"no questions", pktbuild.DNSQuery(7), false, "", Absent},
		{"short header", []byte{1, 2, 3}, false, "", NotProtocol},
		{"udp cut in name", pktbuild.DNSQuery(7, "example.com")[:16], false, "", Malformed},
		{"udp cut in qtype", pktbuild.DNSQuery(7, "example.com")[:27], false, "", Malformed},
		{"tcp cut in name", pktbuild.TCPDNS(pktbuild.DNSQuery(7, "example.com"))[:18], true, "", NeedMore},
		{"tcp cut in header", pktbuild.TCPDNS(pktbuild.DNSQuery(7, "example.com"))[:8], true, "", NeedMore},
		{"tcp only prefix", []byte{0}, true, "", NeedMore},
		{"tcp tiny length", []byte{0, 4, 1, 2, 3, 4}, true, "", NotProtocol},
		{"self pointer", selfPtr, false, "", Malformed},
		{"pointer loop", loop, false, "", Malformed},
		{"forward pointer", fwd, false, "x", Found}, // dnsmasq and others follow it
		{"extended label", ext, false, "", Malformed},
		{"dot in label", dot, false, "", Malformed},
		{"compressed", comp, false, "www.example.com", Found},
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
	msg := pktbuild.DNSQuery(0x1234, "a.example", "B.example")
	// Third question: "c." + pointer to the second question's "example".
	msg[5] = 3
	second := 12 + len(pktbuild.DNSName("a.example")) + 4
	msg = append(msg, 1, 'c', 0xc0, byte(second+2), 0, 28, 0, 1)
	q, st := ParseDNS(msg, false)
	if st != Found || q.ID != 0x1234 || q.Count != 3 || q.IsResponse() || q.Opcode() != 0 {
		t.Fatalf("ParseDNS = %+v, %s", q, st)
	}
	var buf [MaxNameLen]byte
	want := []struct {
		name  string
		qtype uint16
	}{{"a.example", 1}, {"b.example", 1}, {"c.example", 28}}
	for i, w := range want {
		name, qtype, qclass, st := q.Next(buf[:])
		if st != Found || string(name) != w.name || qtype != w.qtype || qclass != 1 {
			t.Errorf("question %d = %q %d %d %s, want %q %d", i, name, qtype, qclass, st, w.name, w.qtype)
		}
	}
	if _, _, _, st := q.Next(buf[:]); st != Absent {
		t.Errorf("after last question: %s", st)
	}
	// A QDCOUNT larger than the questions present must end malformed.
	binary.BigEndian.PutUint16(msg[4:], 9)
	q, _ = ParseDNS(msg, false)
	var last Status
	for range 10 {
		if _, _, _, last = q.Next(buf[:]); last != Found {
			break
		}
	}
	if last != Malformed {
		t.Errorf("QDCOUNT 9 with 3 questions: %s", last)
	}
}

// TestDNSSmallBuffer checks that a buffer too small for the name fails
// cleanly instead of writing past it.
func TestDNSSmallBuffer(t *testing.T) {
	buf := make([]byte, 4)
	if name, st := DNSQueryName(pktbuild.DNSQuery(1, "example.com"), false, buf[:0]); st != Malformed {
		t.Errorf("small buffer: %q %s", name, st)
	}
}

func TestDNSAllocs(t *testing.T) {
	udp, tcp := pktbuild.DNSQuery(1, "www.example.com"), pktbuild.TCPDNS(pktbuild.DNSQuery(1, "www.example.com"))
	var buf [MaxNameLen]byte
	if n := testing.AllocsPerRun(100, func() {
		DNSQueryName(udp, false, buf[:0])
		DNSQueryName(tcp, true, buf[:0])
	}); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func BenchmarkDNSQueryName(b *testing.B) {
	msg := pktbuild.DNSQuery(1, "www.example.com")
	var buf [MaxNameLen]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, st := DNSQueryName(msg, false, buf[:0]); st != Found {
			b.Fatal(st)
		}
	}
}
