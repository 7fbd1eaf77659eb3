package verdict

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/verdict/l7"
)

func TestCompileErrors(t *testing.T) {
	bad := &Policy{
		Sets: map[string][]netip.Prefix{"s": {{}}},
		Rules: []Rule{
			{Name: "a", Action: ActionDrop, Match: Match{InIfaces: []string{"no*pe0"}}},
			{Name: "a", Action: ActionAccept},
			{Name: "", Action: ActionAccept},
			{Name: "b", Match: Match{DstSets: []string{"missing"}, DNS: []string{"a..b"}, Payload: [][]byte{{}}}},
			{Name: "c", Action: ActionAccept, Flow: true, RateLimit: &RateLimit{Rate: Rate{Events: 1, Per: time.Second}}},
			{Name: "d", Action: ActionAccept, RateLimit: &RateLimit{}},
			{Name: "e", Action: ActionAccept, Match: Match{DstPorts: []PortRange{{Lo: 9, Hi: 1}}, Family: 5}},
		},
	}
	_, err := CompileWith(bad, testIfaces)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []struct {
		target error
		text   string
	}{
		{ErrNoDefault, "policy: default: policy has no default action"},
		{ErrBadPrefix, "policy: sets.s: bad prefix"},
		{ErrIfaceName, `rule "a" (#0): in_iface: bad interface name: "no*pe0"`},
		{ErrDuplicateRule, `rule "a" (#1): name: duplicate rule name: also rule #0`},
		{nil, `rule "" (#2): name: rule has no name`},
		{ErrBadAction, `rule "b" (#3): action: bad action: 0`},
		{ErrUnknownSet, `rule "b" (#3): dst: unknown prefix set "missing"`},
		{ErrBadName, `rule "b" (#3): dns: "a..b": bad name pattern`},
		{l7.ErrEmptyPattern, `rule "b" (#3): payload:`},
		{ErrConflict, `rule "c" (#4): rate_limit: conflicting rule options`},
		{ErrBadRateLimit, `rule "d" (#5): rate_limit: bad rate limit: rate 0/0s`},
		{ErrBadPortRange, `rule "e" (#6): port: bad port range: 9-1`},
		{nil, `rule "e" (#6): family: family 5: expected 4 or 6`},
	} {
		if !strings.Contains(err.Error(), want.text) {
			t.Errorf("missing %q in\n%v", want.text, err)
		}
		if want.target != nil && !errors.Is(err, want.target) {
			t.Errorf("not errors.Is %v", want.target)
		}
	}
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Error("not errors.As *CompileError")
	}
}

// TestCompileSharedSet checks that a set used by many rules is indexed
// once and that rules referring to it keep their order.
func TestCompileSharedSet(t *testing.T) {
	p := &Policy{Default: ActionAccept, Sets: map[string][]netip.Prefix{"n": pfx("198.18.0.0/15", "2001:db8::/32")}}
	for i := 0; i < 300; i++ {
		p.Rules = append(p.Rules, Rule{Name: itoa(i), Action: ActionDrop,
			Match: Match{SrcSets: []string{"n"}, DstPorts: ports(PortRange{Lo: uint16(i), Hi: uint16(i)})}})
	}
	c := mustCompile(t, p)
	if n := len(c.idx.src.sets.data) / c.words; n > 4 {
		t.Errorf("%d distinct source bitmaps for one set", n)
	}
	pl := NewPipeline(c, nil)
	for _, port := range []uint16{0, 64, 299} {
		if d := decide(pl, udp(tc6, ts6, 1, port, nil), nil); d.Rule != int(port) {
			t.Errorf("port %d: rule %d", port, d.Rule)
		}
	}
	if d := decide(pl, udp("10.0.0.1", ts4, 1, 5, nil), nil); d.Rule != RuleDefault {
		t.Errorf("outside the set: rule %d", d.Rule)
	}
}
