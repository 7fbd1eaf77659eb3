package names

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// pack builds a message with miekg/dns, the oracle for what servers send.
func pack(t testing.TB, m *dns.Msg, compress bool) []byte {
	t.Helper()
	m.Compress = compress
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func answerMsg(t testing.TB, q string, qtype uint16, rrs ...string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(q, qtype)
	m.Id = 0x1234
	m.Response = true
	for _, s := range rrs {
		m.Answer = append(m.Answer, rr(t, s))
	}
	return m
}

func chainOf(a *Answer) []string {
	var out []string
	for i := 0; i < a.ChainLen(); i++ {
		out = append(out, string(a.ChainName(i)))
	}
	return out
}

func TestParseAnswer(t *testing.T) {
	cases := []struct {
		name  string
		q     string
		qtype uint16
		rrs   []string
		chain []string
		addrs []string
		ttls  []uint32
	}{
		{"plain A", "Www.Example.COM.", dns.TypeA, []string{"www.example.com. 30 IN A 192.0.2.1", "www.example.com. 40 IN A 192.0.2.2"},
			[]string{"www.example.com"}, []string{"192.0.2.1", "192.0.2.2"}, []uint32{30, 40}},
		{"AAAA", "v6.example.", dns.TypeAAAA, []string{"v6.example. 5 IN AAAA 2001:db8::1"},
			[]string{"v6.example"}, []string{"2001:db8::1"}, []uint32{5}},
		{"CNAME chain out of order", "a.example.", dns.TypeA, []string{
			"c.cdn.net. 20 IN A 198.51.100.7",
			"b.example. 60 IN CNAME c.cdn.net.",
			"a.example. 60 IN CNAME b.example.",
		}, []string{"a.example", "b.example", "c.cdn.net"}, []string{"198.51.100.7"}, []uint32{20}},
		{"unrelated owner ignored", "a.example.", dns.TypeA, []string{
			"a.example. 60 IN A 192.0.2.9", "evil.example. 60 IN A 203.0.113.66", "x.example. 60 IN CNAME a.example.",
		}, []string{"a.example"}, []string{"192.0.2.9"}, []uint32{60}},
		{"other type ignored", "a.example.", dns.TypeA, []string{
			"a.example. 60 IN AAAA 2001:db8::9", "a.example. 60 IN TXT \"hi\"", "a.example. 60 IN A 192.0.2.3",
		}, []string{"a.example"}, []string{"192.0.2.3"}, []uint32{60}},
		{"CNAME loop", "a.example.", dns.TypeA, []string{
			"a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example.", "b.example. 9 IN A 192.0.2.4",
		}, []string{"a.example", "b.example"}, []string{"192.0.2.4"}, []uint32{9}},
		{"no answer", "none.example.", dns.TypeA, nil, []string{"none.example"}, nil, nil},
	}
	for _, c := range cases {
		for _, compress := range []bool{false, true} {
			msg := pack(t, answerMsg(t, c.q, c.qtype, c.rrs...), compress)
			var a Answer
			if r := ParseAnswer(msg, &a); r != OK {
				t.Fatalf("%s (compress %v): %v", c.name, compress, r)
			}
			if a.ID != 0x1234 || a.Type != c.qtype {
				t.Errorf("%s: id %#x type %d", c.name, a.ID, a.Type)
			}
			if got := chainOf(&a); !slices.Equal(got, c.chain) {
				t.Errorf("%s (compress %v): chain %q, want %q", c.name, compress, got, c.chain)
			}
			var addrs []string
			var ttls []uint32
			for _, r := range a.Addrs() {
				addrs, ttls = append(addrs, r.Addr.String()), append(ttls, r.TTL)
			}
			if !slices.Equal(addrs, c.addrs) || !slices.Equal(ttls, c.ttls) {
				t.Errorf("%s (compress %v): addrs %v ttls %v, want %v %v", c.name, compress, addrs, ttls, c.addrs, c.ttls)
			}
		}
	}
}

func TestParseAnswerChainBound(t *testing.T) {
	var rrs []string
	names := []string{"n0.example."}
	for i := 1; i < 12; i++ {
		names = append(names, "n"+string(rune('a'+i))+".example.")
		rrs = append(rrs, names[i-1]+" 60 IN CNAME "+names[i])
	}
	rrs = append(rrs, names[len(names)-1]+" 60 IN A 192.0.2.1", names[3]+" 60 IN A 192.0.2.3")
	var a Answer
	if r := ParseAnswer(pack(t, answerMsg(t, names[0], dns.TypeA, rrs...), true), &a); r != OK {
		t.Fatal(r)
	}
	if a.ChainLen() != MaxChain {
		t.Fatalf("chain %d, want the bound %d", a.ChainLen(), MaxChain)
	}
	if got := a.Addrs(); len(got) != 1 || got[0].Addr != netip.MustParseAddr("192.0.2.3") {
		t.Fatalf("addrs %v: only the owner inside the bounded chain counts", got)
	}
}

func TestParseAnswerRejects(t *testing.T) {
	good := pack(t, answerMsg(t, "a.example.", dns.TypeA, "a.example. 60 IN CNAME b.example.", "b.example. 60 IN A 192.0.2.1"), true)
	var a Answer
	for cut := 0; cut < len(good); cut++ {
		r := ParseAnswer(good[:cut], &a)
		if r == OK {
			t.Fatalf("cut at %d of %d: OK", cut, len(good))
		}
	}
	query := new(dns.Msg)
	query.SetQuestion("a.example.", dns.TypeA)
	qb := pack(t, query, true)
	if r := ParseAnswer(qb, &a); r != NotDNS {
		t.Errorf("a query as answer: %v", r)
	}
	var q Question
	if r := ParseQuery(qb, &q); r != OK || string(q.Name()) != "a.example" || q.Type != dns.TypeA || q.ID != query.Id {
		t.Errorf("query: %v %q", r, q.Name())
	}
	if r := ParseQuery(good, &q); r != NotDNS {
		t.Errorf("an answer as query: %v", r)
	}
	mx := answerMsg(t, "a.example.", dns.TypeMX)
	if r := ParseAnswer(pack(t, mx, false), &a); r != Unsupported {
		t.Errorf("MX: %v", r)
	}
	nx := answerMsg(t, "a.example.", dns.TypeA, "a.example. 60 IN A 192.0.2.1")
	nx.Rcode = dns.RcodeNameError
	if r := ParseAnswer(pack(t, nx, false), &a); r != OK || len(a.Addrs()) != 0 {
		t.Errorf("NXDOMAIN with a record: %v %v", r, a.Addrs())
	}
	tc := answerMsg(t, "a.example.", dns.TypeA, "a.example. 60 IN A 192.0.2.1")
	tc.Truncated = true
	if r := ParseAnswer(pack(t, tc, false), &a); r != OK || !a.Truncated || len(a.Addrs()) != 1 {
		t.Errorf("TC with a whole record: %v %v", r, a.Addrs())
	}
	// A record whose RDLENGTH is wrong for its type; a pointer loop; a
	// label holding a dot.
	bad := slices.Clone(pack(t, answerMsg(t, "a.example.", dns.TypeA, "a.example. 60 IN A 192.0.2.1"), false))
	bad[len(bad)-5] = 5 // RDLENGTH low byte: 4 -> 5 runs past the end
	if r := ParseAnswer(bad, &a); r != Malformed {
		t.Errorf("bad rdlength: %v", r)
	}
	loop := []byte{0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
	if r := ParseAnswer(loop, &a); r != Malformed {
		t.Errorf("pointer loop: %v", r)
	}
	dot := []byte{0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', '.', 'b', 0, 0, 1, 0, 1}
	if r := ParseAnswer(dot, &a); r != Malformed {
		t.Errorf("dot in label: %v", r)
	}
}

func TestParseAllocs(t *testing.T) {
	msg := pack(t, answerMsg(t, "a.example.", dns.TypeA, "a.example. 60 IN CNAME b.example.", "b.example. 60 IN A 192.0.2.1"), true)
	var a Answer
	if n := testing.AllocsPerRun(100, func() { ParseAnswer(msg, &a) }); n != 0 {
		t.Fatalf("ParseAnswer: %v allocs", n)
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add(pack(f, answerMsg(f, "a.example.", dns.TypeA, "a.example. 60 IN CNAME b.example.", "b.example. 60 IN A 192.0.2.1"), true))
	f.Add(pack(f, answerMsg(f, "v6.example.", dns.TypeAAAA, "v6.example. 5 IN AAAA 2001:db8::1"), false))
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	var a Answer
	f.Fuzz(func(t *testing.T, b []byte) {
		r := ParseAnswer(b, &a)
		m := new(dns.Msg)
		oracleErr := m.Unpack(b)
		if r != OK {
			return
		}
		if a.ChainLen() < 1 || a.ChainLen() > MaxChain || len(a.Addrs()) > MaxAddrs {
			t.Fatalf("chain %d addrs %d", a.ChainLen(), len(a.Addrs()))
		}
		for i := 0; i < a.ChainLen(); i++ {
			if n := a.ChainName(i); len(n) > MaxNameLen {
				t.Fatalf("name %q too long", n)
			}
		}
		for _, rec := range a.Addrs() {
			if a.Type == TypeA != rec.Addr.Is4() || rec.TTL&0x80000000 != 0 {
				t.Fatalf("record %v of type %d", rec, a.Type)
			}
		}
		// Every address read must be one the oracle reads in the answer
		// section, when the oracle can read the message at all.
		if oracleErr != nil {
			return
		}
		for _, rec := range a.Addrs() {
			found := false
			for _, x := range m.Answer {
				switch v := x.(type) {
				case *dns.A:
					found = found || netip.AddrFrom4([4]byte(v.A.To4())) == rec.Addr
				case *dns.AAAA:
					found = found || netip.AddrFrom16([16]byte(v.AAAA.To16())) == rec.Addr
				}
			}
			if !found {
				t.Fatalf("address %v not in the oracle's answer section %v", rec.Addr, m.Answer)
			}
		}
	})
}
