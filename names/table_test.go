package names

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// suffix matches names ending in one of its suffixes.
type suffix []string

func (s suffix) MatchName(n []byte) bool {
	for _, x := range s {
		if bytes.HasSuffix(n, []byte(x)) {
			return true
		}
	}
	return false
}

var (
	client = netip.MustParseAddr("198.18.0.2")
	server = netip.MustParseAddr("198.19.0.2")
	qflow  = Flow{Proto: 17, Src: client, Dst: server, SrcPort: 40000, DstPort: 53}
	aflow  = Flow{Proto: 17, Src: server, Dst: client, SrcPort: 53, DstPort: 40000}
)

func newTable(t *testing.T, c *Config) (*Table, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	cc := Config{}
	if c != nil {
		cc = *c
	}
	cc.Now = clk.now
	tb, err := New(&cc)
	if err != nil {
		t.Fatal(err)
	}
	tb.SetFilter(suffix{"example"})
	return tb, clk
}

func ask(t *testing.T, tb *Table, f Flow, id uint16, name string, qtype uint16) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	var q Question
	if r := ParseQuery(pack(t, m, true), &q); r != OK {
		t.Fatal(r)
	}
	tb.Query(f, &q)
}

func answer(t *testing.T, tb *Table, f Flow, id uint16, name string, qtype uint16, rrs ...string) (int, bool) {
	t.Helper()
	m := answerMsg(t, name, qtype, rrs...)
	m.Id = id
	var a Answer
	if r := ParseAnswer(pack(t, m, true), &a); r != OK {
		t.Fatal(r)
	}
	return tb.Answer(f, &a)
}

func TestTableSolicited(t *testing.T) {
	tb, clk := newTable(t, &Config{MinTTL: time.Second, MaxTTL: time.Hour})
	www := netip.MustParseAddr("192.0.2.1")
	// Unsolicited: nothing asked.
	if n, ok := answer(t, tb, aflow, 7, "www.example.", dns.TypeA, "www.example. 5 IN A 192.0.2.1"); n != 0 || ok {
		t.Fatalf("unsolicited bound %d", n)
	}
	ask(t, tb, qflow, 7, "www.example.", dns.TypeA)
	for _, bad := range []struct {
		f    Flow
		id   uint16
		name string
		typ  uint16
	}{
		{aflow, 8, "www.example.", dns.TypeA},    // wrong ID
		{aflow, 7, "other.example.", dns.TypeA},  // wrong question
		{aflow, 7, "www.example.", dns.TypeAAAA}, // wrong type
		{qflow, 7, "www.example.", dns.TypeA},    // not the reversed flow
		{Flow{Proto: 6, Src: server, Dst: client, SrcPort: 53, DstPort: 40000}, 7, "www.example.", dns.TypeA}, // TCP
		{Flow{Proto: 17, Src: netip.MustParseAddr("198.19.0.9"), Dst: client, SrcPort: 53, DstPort: 40000}, 7, "www.example.", dns.TypeA},
	} {
		if n, _ := answer(t, tb, bad.f, bad.id, bad.name, bad.typ, "www.example. 5 IN A 192.0.2.1", "www.example. 5 IN AAAA 2001:db8::1", "other.example. 5 IN A 192.0.2.1"); n != 0 {
			t.Fatalf("%+v bound %d", bad, n)
		}
	}
	if tb.Match(www, suffix{"example"}) {
		t.Fatal("bound by a forged answer")
	}
	if n, ok := answer(t, tb, aflow, 7, "www.example.", dns.TypeA, "www.example. 5 IN A 192.0.2.1"); n != 1 || !ok {
		t.Fatalf("solicited answer bound %d (%v)", n, ok)
	}
	if !tb.Match(www, suffix{"www.example"}) || tb.Match(www, suffix{"other"}) || tb.Match(netip.MustParseAddr("192.0.2.2"), suffix{"example"}) {
		t.Fatal("match")
	}
	// The query was consumed: a second answer binds nothing.
	if n, ok := answer(t, tb, aflow, 7, "www.example.", dns.TypeA, "www.example. 5 IN A 192.0.2.99"); n != 0 || ok {
		t.Fatal("replayed answer bound")
	}
	if s := tb.Stats(); s.Unsolicited != 8 || s.Answers != 1 || s.Added != 1 || s.Bindings != 1 {
		t.Fatalf("stats %+v", s)
	}
	clk.t = clk.t.Add(5 * time.Second)
	if tb.Match(www, suffix{"example"}) {
		t.Fatal("binding outlived its TTL")
	}
	// A pending query times out.
	ask(t, tb, qflow, 9, "www.example.", dns.TypeA)
	clk.t = clk.t.Add(DefaultPendingTimeout + time.Second)
	if n, _ := answer(t, tb, aflow, 9, "www.example.", dns.TypeA, "www.example. 5 IN A 192.0.2.1"); n != 0 {
		t.Fatal("late answer bound")
	}
}

func TestTableChainAndFilter(t *testing.T) {
	tb, _ := newTable(t, &Config{MinTTL: time.Second})
	tb.SetFilter(suffix{"cdn.net", "a.example"})
	ask(t, tb, qflow, 1, "a.example.", dns.TypeA)
	n, _ := answer(t, tb, aflow, 1, "a.example.", dns.TypeA,
		"a.example. 60 IN CNAME b.other.", "b.other. 60 IN CNAME c.cdn.net.", "c.cdn.net. 20 IN A 198.51.100.7")
	if n != 2 {
		t.Fatalf("bound %d, want 2 (a.example and c.cdn.net; b.other matches no rule)", n)
	}
	got := tb.Bindings()
	if len(got) != 2 || got[0].Name != "a.example" || got[1].Name != "c.cdn.net" || got[0].Addr.String() != "198.51.100.7" {
		t.Fatalf("bindings %+v", got)
	}
	tb.SetFilter(nil)
	ask(t, tb, qflow, 2, "a.example.", dns.TypeA)
	if n, ok := answer(t, tb, aflow, 2, "a.example.", dns.TypeA, "a.example. 60 IN A 192.0.2.1"); n != 0 || !ok {
		t.Fatalf("no filter: bound %d", n)
	}
}

func TestTableClampAndRefresh(t *testing.T) {
	tb, clk := newTable(t, &Config{MinTTL: 10 * time.Second, MaxTTL: time.Minute, Updates: true})
	a := netip.MustParseAddr("192.0.2.1")
	for i, c := range []struct {
		ttl  string
		want time.Duration
	}{{"1", 10 * time.Second}, {"3600", time.Minute}, {"30", time.Minute}, {"2147483648", time.Minute}} {
		ask(t, tb, qflow, uint16(i), "x.example.", dns.TypeA)
		answer(t, tb, aflow, uint16(i), "x.example.", dns.TypeA, "x.example. "+c.ttl+" IN A 192.0.2.1")
		b := tb.Bindings()
		if len(b) != 1 || b[0].Expires.Sub(clk.t) != c.want {
			t.Fatalf("ttl %s: %+v, want %v", c.ttl, b, c.want)
		}
	}
	// A shorter answer does not shorten the binding; only growth is sent.
	if got := len(tb.Updates()); got != 2 {
		t.Fatalf("%d updates, want 2 (new, then extended)", got)
	}
	if s := tb.Stats(); s.Added != 1 || s.Refreshed != 1 {
		t.Fatalf("stats %+v", s)
	}
	clk.t = clk.t.Add(59 * time.Second)
	if !tb.Match(a, suffix{"example"}) {
		t.Fatal("expired early")
	}
	clk.t = clk.t.Add(time.Second)
	if tb.Match(a, suffix{"example"}) || len(tb.Bindings()) != 0 {
		t.Fatal("outlived max_ttl")
	}
}

func TestTableCapacity(t *testing.T) {
	tb, clk := newTable(t, &Config{MinTTL: time.Second, MaxBindings: 3})
	for i := range 5 {
		ask(t, tb, qflow, uint16(i), "x.example.", dns.TypeA)
		// Later answers live longer, so the earliest-expiring go first.
		answer(t, tb, aflow, uint16(i), "x.example.", dns.TypeA,
			"x.example. "+string(rune('1'+i))+"0 IN A 192.0.2."+string(rune('1'+i)))
		clk.t = clk.t.Add(time.Millisecond)
	}
	b := tb.Bindings()
	if len(b) != 3 || b[0].Addr.String() != "192.0.2.3" || b[2].Addr.String() != "192.0.2.5" {
		t.Fatalf("bindings %+v", b)
	}
	if s := tb.Stats(); s.Evicted != 2 || s.Bindings != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTableUpdateDrops(t *testing.T) {
	tb, _ := newTable(t, &Config{MinTTL: time.Second, Updates: true})
	m := answerMsg(t, "x.example.", dns.TypeA)
	for i := range DefaultUpdates + 10 {
		a4 := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: a4.AsSlice()}}
		m.Id = uint16(i)
		ask(t, tb, qflow, uint16(i), "x.example.", dns.TypeA)
		var a Answer
		ParseAnswer(pack(t, m, true), &a)
		tb.Answer(aflow, &a)
	}
	if s := tb.Stats(); s.UpdateDrops != 10 || len(tb.Updates()) != DefaultUpdates {
		t.Fatalf("stats %+v, %d queued", s, len(tb.Updates()))
	}
}

func TestTablePendingEviction(t *testing.T) {
	tb, _ := newTable(t, &Config{MaxPending: 4})
	for i := range 8 {
		ask(t, tb, qflow, uint16(i), "x.example.", dns.TypeA)
	}
	if s := tb.Stats(); s.QueryEvicts == 0 || s.Queries != 8 {
		t.Fatalf("stats %+v", s)
	}
	// A retry of the same query takes its own slot again.
	tb2, _ := newTable(t, &Config{MaxPending: 4})
	for range 8 {
		ask(t, tb2, qflow, 1, "x.example.", dns.TypeA)
	}
	if s := tb2.Stats(); s.QueryEvicts != 0 {
		t.Fatalf("retries evicted: %+v", s)
	}
}

func TestTableMatchAllocs(t *testing.T) {
	tb, _ := newTable(t, &Config{MinTTL: time.Second})
	ask(t, tb, qflow, 1, "x.example.", dns.TypeA)
	answer(t, tb, aflow, 1, "x.example.", dns.TypeA, "x.example. 60 IN A 192.0.2.1")
	var m Matcher = suffix{"example"}
	a, miss := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if n := testing.AllocsPerRun(1000, func() {
		if !tb.Match(a, m) || tb.Match(miss, m) {
			t.Fatal("match")
		}
	}); n != 0 {
		t.Fatalf("Match: %v allocs", n)
	}
	var q Question
	m2 := new(dns.Msg)
	m2.SetQuestion("x.example.", dns.TypeA)
	qb := pack(t, m2, true)
	if n := testing.AllocsPerRun(1000, func() { ParseQuery(qb, &q); tb.Query(qflow, &q) }); n != 0 {
		t.Fatalf("Query: %v allocs", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{MinTTL: time.Hour, MaxTTL: time.Minute}, {MinTTL: -1}, {MaxBindings: -1}, {MaxPending: 1 << 21}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	var nilc *Config
	if err := nilc.Validate(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkMatch(b *testing.B) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	tb, _ := New(&Config{Now: clk.now})
	tb.SetFilter(suffix{"example"})
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		tb.bind([]byte("x.example"), a, time.Hour, clk.t)
	}
	var m Matcher = suffix{"example"}
	a := netip.AddrFrom4([4]byte{10, 0, 1, 1})
	b.ReportAllocs()
	for b.Loop() {
		tb.Match(a, m)
	}
}

func TestTableServers(t *testing.T) {
	tb, _ := newTable(t, &Config{MinTTL: time.Second, Servers: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/24")}})
	ask(t, tb, qflow, 1, "x.example.", dns.TypeA)
	if n, ok := answer(t, tb, aflow, 1, "x.example.", dns.TypeA, "x.example. 60 IN A 192.0.2.1"); n != 1 || !ok {
		t.Fatalf("trusted server: bound %d", n)
	}
	own := netip.MustParseAddr("203.0.113.53") // a server the client chose
	q := Flow{Proto: 17, Src: client, Dst: own, SrcPort: 40001, DstPort: 53}
	ask(t, tb, q, 2, "x.example.", dns.TypeA)
	if n, _ := answer(t, tb, q.reverse(), 2, "x.example.", dns.TypeA, "x.example. 60 IN A 192.0.2.66"); n != 0 {
		t.Fatalf("untrusted server bound %d", n)
	}
	if s := tb.Stats(); s.Untrusted != 1 || s.Queries != 1 || s.Bindings != 1 {
		t.Fatalf("stats %+v", s)
	}
	bad := Config{Servers: []netip.Prefix{{}}}
	if bad.Validate() == nil {
		t.Fatal("invalid prefix accepted")
	}
}

// TestTableConcurrent feeds and reads one table from several goroutines,
// as the queues' pipelines and a status scrape do (run with -race).
func TestTableConcurrent(t *testing.T) {
	tb, err := New(&Config{MinTTL: time.Millisecond, MaxTTL: 20 * time.Millisecond, MaxBindings: 64, Updates: true})
	if err != nil {
		t.Fatal(err)
	}
	tb.SetFilter(suffix{"example"})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			<-tb.Updates()
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var q Question
			var a Answer
			for i := range 500 {
				m := new(dns.Msg)
				m.SetQuestion("x.example.", dns.TypeA)
				m.Id = uint16(i)
				qb, _ := m.Pack()
				ParseQuery(qb, &q)
				f := Flow{Proto: 17, Src: client, Dst: server, SrcPort: uint16(1000 + g), DstPort: 53}
				tb.Query(f, &q)
				r := new(dns.Msg)
				r.SetReply(m)
				r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A: netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}).AsSlice()}}
				rb, _ := r.Pack()
				ParseAnswer(rb, &a)
				tb.Answer(f.reverse(), &a)
				tb.Match(netip.AddrFrom4([4]byte{10, byte(g), 0, byte(i)}), suffix{"example"})
				if i%50 == 0 {
					tb.Bindings()
					tb.Stats()
				}
			}
		}()
	}
	wg.Wait()
	if s := tb.Stats(); s.Bindings > 64 || s.Answers != 2000 {
		t.Fatalf("stats %+v", s)
	}
	<-done
}
