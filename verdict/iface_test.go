package verdict

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestIfaceLater compiles a rule naming an interface that does not exist
// yet: its packets pass the rule by until the link appears, then the rule
// applies; a rename takes it away again. The table asks its lookup once per
// unknown index, never per packet.
func TestIfaceLater(t *testing.T) {
	var lookups atomic.Int32
	ifs := NewIfaces(func(i uint32) (string, error) {
		lookups.Add(1)
		return "", errors.New("no such device")
	})
	c, err := CompileWith(&Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "wg", Match: Match{InIfaces: []string{"wg0"}}, Action: ActionDrop},
		{Name: "veth", Match: Match{OutIfaces: []string{"veth*"}}, Action: ActionReject},
	}}, &CompileOptions{Ifaces: ifs})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(c, nil)
	pk := tcp(tc4, ts4, 40000, 22, nil)
	want := func(m Meta, a Action) {
		t.Helper()
		pk.sport++ // a new flow each time: decisions are cached per flow
		if d := decide(p, pk, &m); d.Action != a {
			t.Errorf("in %d out %d: %v by %s, want %v", m.InIf, m.OutIf, d.Action, c.RuleName(d.Rule), a)
		}
	}
	want(Meta{InIf: 5}, ActionAccept)
	want(Meta{InIf: 5}, ActionAccept)
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d lookups for one unknown index, want 1", n)
	}
	ifs.Set(5, "wg0") // the link notification
	want(Meta{InIf: 5}, ActionDrop)
	want(Meta{InIf: 6}, ActionAccept)
	ifs.Set(6, "veth-a1")
	want(Meta{InIf: 6, OutIf: 6}, ActionReject)
	want(Meta{OutIf: 5}, ActionAccept)
	ifs.Set(5, "wg1") // renamed
	want(Meta{InIf: 5}, ActionAccept)
	ifs.Delete(6)
	want(Meta{InIf: 1, OutIf: 6}, ActionAccept)
	if tr := p.Trace(pk.raw(), &Meta{InIf: 5}); len(tr.Steps) == 0 || tr.Steps[0].Checks[0].Detail != "wg1 (index 5) in [wg0]" {
		t.Errorf("trace %+v", tr.Steps)
	}
}

func TestIfacePatterns(t *testing.T) {
	for _, bad := range []string{"*", "", "a*b*", "eth 0", "a/b", "0123456789abcdef", "."} {
		if _, err := parseIfPattern(bad); !errors.Is(err, ErrIfaceName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for s, names := range map[string][2]string{"eth*": {"eth10", "et"}, "wg0": {"wg0", "wg01"}, "0123456789abcd*": {"0123456789abcde", "x"}} {
		p, err := parseIfPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		if !p.match(names[0]) || p.match(names[1]) || p.String() != s {
			t.Errorf("%q: %v %v", s, p.match(names[0]), p.match(names[1]))
		}
	}
}

// TestIfaceAllocs: matching names allocates nothing once an interface's
// name is known.
func TestIfaceAllocs(t *testing.T) {
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "c", Match: Match{InIfaces: []string{"fw-c"}, OutIfaces: []string{"fw*"}}, Action: ActionDrop},
	}})
	p := NewPipeline(c, nil)
	g := &flowGen{raw: tcp(tc4, ts4, 1, 443, nil).raw()}
	m := Meta{InIf: 7, OutIf: 8}
	var d Decision
	p.Decide(g.next(), &m, &d)
	if d.Action != ActionDrop {
		t.Fatalf("%v", d.Action)
	}
	if n := testing.AllocsPerRun(1000, func() { p.Decide(g.next(), &m, &d) }); n != 0 {
		t.Errorf("%v allocs per packet", n)
	}
}

// TestIfaceConcurrent: link notifications arrive while a pipeline decides
// (run with -race); every decision is one of the two the names allow.
func TestIfaceConcurrent(t *testing.T) {
	ifs := NewIfaces(func(uint32) (string, error) { return "", errors.New("none") })
	c, err := CompileWith(&Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "wg", Match: Match{InIfaces: []string{"wg*"}}, Action: ActionDrop},
	}}, &CompileOptions{Ifaces: ifs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			ifs.Set(5, fmt.Sprintf("wg%d", i%40))
			if i%7 == 0 {
				ifs.Delete(5)
			}
			if i%500 == 0 {
				ifs.Reset()
			}
		}
	}()
	p := NewPipeline(c, nil)
	g := &flowGen{raw: tcp(tc4, ts4, 1, 22, nil).raw()}
	var d Decision
	for i := 0; i < 5000; i++ {
		p.Decide(g.next(), &Meta{InIf: 5}, &d)
		if d.Action != ActionAccept && d.Action != ActionDrop {
			t.Fatalf("%v", d.Action)
		}
	}
	<-done
	ifs.Set(5, "wg1")
	if p.Decide(g.next(), &Meta{InIf: 5}, &d); d.Action != ActionDrop {
		t.Errorf("after the last rename: %v", d.Action)
	}
}
