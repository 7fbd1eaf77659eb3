package rules

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/qguard/qguard/names"
)

type suffixMatcher string

func (s suffixMatcher) MatchName(n []byte) bool { return bytes.HasSuffix(n, []byte(s)) }

// bindTable binds name to addr for ttl seconds in tab through a query and
// its answer.
func bindTable(t *testing.T, tab *names.Table, name, addr string, ttl uint32) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name+".", dns.TypeA)
	if netip.MustParseAddr(addr).Is6() {
		q.SetQuestion(name+".", dns.TypeAAAA)
	}
	qb, _ := q.Pack()
	var qq names.Question
	if r := names.ParseQuery(qb, &qq); r != names.OK {
		t.Fatal(r)
	}
	f := names.Flow{Proto: 17, Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.2"), SrcPort: 4000, DstPort: 53}
	tab.Query(f, &qq)
	a := new(dns.Msg)
	a.SetReply(q)
	typ := "A"
	if netip.MustParseAddr(addr).Is6() {
		typ = "AAAA"
	}
	rr, err := dns.NewRR(name + ". " + strconv.Itoa(int(ttl)) + " IN " + typ + " " + addr)
	if err != nil {
		t.Fatal(err)
	}
	a.Answer = []dns.RR{rr}
	ab, _ := a.Pack()
	var aa names.Answer
	if r := names.ParseAnswer(ab, &aa); r != names.OK {
		t.Fatal(r)
	}
	if n, ok := tab.Answer(names.Flow{Proto: 17, Src: f.Dst, Dst: f.Src, SrcPort: 53, DstPort: 4000}, &aa); n == 0 || !ok {
		t.Fatalf("bound %d", n)
	}
}

// TestIntegrationNameSets: a kernel-first rule with DstNames gets timeout
// sets per family, filled from the table at install, by AddBinding later,
// carried into a new generation by Replace, and emptied by the kernel when
// the timeouts run out.
func TestIntegrationNameSets(t *testing.T) {
	ns, fd := testNS(t)
	tab, err := names.New(&names.Config{MinTTL: time.Second, Updates: true})
	if err != nil {
		t.Fatal(err)
	}
	tab.SetFilter(suffixMatcher("example"))
	bindTable(t, tab, "a.blocked.example", "203.0.113.1", 60)
	cfg := fwConfig(fd, QueueAuto)
	cfg.Mode = KernelFirst
	cfg.Names = tab
	cfg.NamePorts = []PortRange{{Lo: 53, Hi: 53}}
	cfg.Policy = &Policy{Default: ActionAccept, Rules: []PolicyRule{
		{Name: "no-blocked", DstNames: suffixMatcher("blocked.example"), Action: ActionDrop},
	}}
	m := applied(t, cfg)
	set4 := func() string {
		return nft(t, ns, "list", "set", "inet", "qguard", nameSetName(0, false, false, m.genNumber()))
	}
	if s := set4(); !strings.Contains(s, "203.0.113.1 timeout") || !strings.Contains(s, "flags timeout") {
		t.Fatalf("after Apply:\n%s", s)
	}
	if s := nft(t, ns, "list", "chain", "inet", "qguard", genName("forward_policy", m.genNumber())); !strings.Contains(s, "ip daddr @name_0_dst4") ||
		!strings.Contains(s, "ip6 daddr @name_0_dst6") {
		t.Fatalf("policy chain:\n%s", s)
	}
	if s := nft(t, ns, "list", "chain", "inet", "qguard", genName("forward", m.genNumber())); !strings.Contains(s, "th sport 53") || !strings.Contains(s, "th dport 53") {
		t.Fatalf("no DNS steering for the names:\n%s", s)
	}
	bindTable(t, tab, "b.blocked.example", "203.0.113.2", 2)
	bindTable(t, tab, "v6.blocked.example", "2001:db8::2", 60)
	bindTable(t, tab, "c.fine.example", "203.0.113.3", 60) // matches the filter, not the rule
	var bs []names.Binding
	for len(tab.Updates()) > 0 {
		bs = append(bs, <-tab.Updates())
	}
	if err := m.AddBinding(bs); err != nil {
		t.Fatal(err)
	}
	s := set4()
	if !strings.Contains(s, "203.0.113.2 timeout") || strings.Contains(s, "203.0.113.3") {
		t.Fatalf("after AddBinding:\n%s", s)
	}
	if s6 := nft(t, ns, "list", "set", "inet", "qguard", nameSetName(0, false, true, m.genNumber())); !strings.Contains(s6, "2001:db8::2 timeout") {
		t.Fatalf("v6 set:\n%s", s6)
	}
	old := m.genNumber()
	if err := m.Replace(cfg); err != nil {
		t.Fatal(err)
	}
	if m.genNumber() == old {
		t.Fatal("no new generation")
	}
	if s := set4(); !strings.Contains(s, "203.0.113.1 timeout") || !strings.Contains(s, "203.0.113.2 timeout") {
		t.Fatalf("after Replace:\n%s", s)
	}
	if out := nft(t, ns, "list", "table", "inet", "qguard"); strings.Contains(out, nameSetName(0, false, false, old)) {
		t.Fatalf("old generation's set left:\n%s", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(set4(), "203.0.113.2") {
		if time.Now().After(deadline) {
			t.Fatalf("element outlived its 2 s timeout:\n%s", set4())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d, err := m.Verify(); err != nil || d != nil {
		t.Fatalf("verify: %v %v", d, err)
	}
}

// TestIntegrationNameSetRefresh: adding an element again extends its
// timeout (the kernel updates it since 6.13).
func TestIntegrationNameSetRefresh(t *testing.T) {
	ns, fd := testNS(t)
	cfg := fwConfig(fd, QueueAuto)
	cfg.Mode = KernelFirst
	cfg.Policy = &Policy{Default: ActionAccept, Rules: []PolicyRule{{Name: "x", DstNames: suffixMatcher("x"), Action: ActionDrop}}}
	m := applied(t, cfg)
	a := netip.MustParseAddr("203.0.113.9")
	if err := m.AddBinding([]names.Binding{{Name: "a.x", Addr: a, Expires: time.Now().Add(2 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddBinding([]names.Binding{{Name: "a.x", Addr: a, Expires: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if s := nft(t, ns, "list", "set", "inet", "qguard", nameSetName(0, false, false, m.genNumber())); !strings.Contains(s, "203.0.113.9") {
		t.Skipf("this kernel does not update an element's timeout on re-add (docs/names.md):\n%s", s)
	}
}
