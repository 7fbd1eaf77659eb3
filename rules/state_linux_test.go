package rules

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func testRule(note string, exprs ...expr.Any) *nftables.Rule {
	return &nftables.Rule{Exprs: exprs, UserData: comment(note)}
}

func testState() *tableState {
	steer := testRule("steer to queue", &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}}, &expr.Counter{Packets: 5, Bytes: 300})
	block := testRule("blocked source", &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	return &tableState{Present: true, Chains: map[string]chainState{
		"forward": {Hook: "type filter hook 2 priority 0 policy 1", Rules: []ruleState{ruleKey(block), ruleKey(steer)}},
	}, Sets: map[string]string{"block4": "", "steer_iifname": "a,b"}}
}

func clone(s *tableState) *tableState {
	c := *s
	c.Chains = map[string]chainState{}
	for k, v := range s.Chains {
		v.Rules = append([]ruleState(nil), v.Rules...)
		c.Chains[k] = v
	}
	c.Sets = map[string]string{}
	for k, v := range s.Sets {
		c.Sets[k] = v
	}
	return &c
}

func TestStateDiff(t *testing.T) {
	want := testState()
	if d := want.diff(clone(want), "qguard"); d != nil {
		t.Fatalf("equal states differ: %v", d)
	}
	// Counters are not part of the state.
	r := testRule("steer to queue", &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}}, &expr.Counter{Packets: 99, Bytes: 1})
	if ruleKey(r).Key != want.Chains["forward"].Rules[1].Key {
		t.Error("counter values change the fingerprint")
	}
	for _, tc := range []struct {
		name   string
		change func(s *tableState)
		want   string
	}{
		{"table deleted", func(s *tableState) { *s = tableState{} }, "table inet qguard deleted"},
		{"dormant", func(s *tableState) { s.Flags = unix.NFT_TABLE_F_DORMANT }, "table flags 0x1, want 0x0"},
		{"chain deleted", func(s *tableState) { delete(s.Chains, "forward") }, "chain forward deleted"},
		{"chain added", func(s *tableState) { s.Chains["evil"] = chainState{Hook: "regular"} }, "chain evil added"},
		{"policy", func(s *tableState) {
			c := s.Chains["forward"]
			c.Hook = "type filter hook 2 priority 0 policy 0"
			s.Chains["forward"] = c
		}, `chain forward is "type filter hook 2 priority 0 policy 0"`},
		{"rule deleted", func(s *tableState) {
			c := s.Chains["forward"]
			c.Rules = c.Rules[:1]
			s.Chains["forward"] = c
		}, `chain forward: rule "steer to queue" deleted`},
		{"rule added", func(s *tableState) {
			c := s.Chains["forward"]
			c.Rules = append([]ruleState{ruleKey(&nftables.Rule{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})}, c.Rules...)
			s.Chains["forward"] = c
		}, `chain forward: rule "accept" added`},
		{"rule changed", func(s *tableState) {
			c := s.Chains["forward"]
			c.Rules[1] = ruleKey(testRule("steer to queue", &expr.Counter{}))
			s.Chains["forward"] = c
		}, `rule "steer to queue" deleted; chain forward: rule "steer to queue" added`},
		{"reordered", func(s *tableState) {
			c := s.Chains["forward"]
			c.Rules[0], c.Rules[1] = c.Rules[1], c.Rules[0]
			s.Chains["forward"] = c
		}, "chain forward: rules reordered"},
		{"set flushed", func(s *tableState) { s.Sets["steer_iifname"] = "" }, "set steer_iifname elements changed"},
	} {
		have := clone(want)
		tc.change(have)
		got := strings.Join(want.diff(have, "qguard"), "; ")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: diff %q, want %q in it", tc.name, got, tc.want)
		}
	}
	// Removed on purpose: absence is the expected state.
	if d := (&tableState{}).diff(&tableState{}, "qguard"); d != nil {
		t.Errorf("absent vs absent: %v", d)
	}
}

func nftMsg(typ uint16, family uint8, attrs ...netlink.Attribute) netlink.Message {
	b, _ := netlink.MarshalAttributes(attrs)
	hdr := make([]byte, 4)
	hdr[0] = family
	binary.BigEndian.PutUint16(hdr[2:], 0)
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ)}, Data: append(hdr, b...)}
}

func TestAboutTable(t *testing.T) {
	name := func(s string) []byte { return append([]byte(s), 0) }
	for _, tc := range []struct {
		what string
		msg  netlink.Message
		want bool
	}{
		{"our table deleted", nftMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_INET, netlink.Attribute{Type: 1, Data: name("qguard")}), true},
		{"our rule deleted", nftMsg(unix.NFT_MSG_DELRULE, unix.NFPROTO_INET, netlink.Attribute{Type: 1, Data: name("qguard")}), true},
		{"other table", nftMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_INET, netlink.Attribute{Type: 1, Data: name("filter")}), false},
		{"same name, ip family", nftMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_IPV4, netlink.Attribute{Type: 1, Data: name("qguard")}), false},
		{"generation", nftMsg(unix.NFT_MSG_NEWGEN, unix.NFPROTO_INET), false},
		{"block set element", nftMsg(unix.NFT_MSG_NEWSETELEM, unix.NFPROTO_INET,
			netlink.Attribute{Type: 1, Data: name("qguard")}, netlink.Attribute{Type: 2, Data: name(Block4Set)}), false},
		{"steering set element", nftMsg(unix.NFT_MSG_DELSETELEM, unix.NFPROTO_INET,
			netlink.Attribute{Type: 1, Data: name("qguard")}, netlink.Attribute{Type: 2, Data: name(inIfSet)}), true},
		{"not nf_tables", netlink.Message{Header: netlink.Header{Type: 3 << 8}, Data: make([]byte, 8)}, false},
		{"short", netlink.Message{Header: netlink.Header{Type: unix.NFNL_SUBSYS_NFTABLES << 8}, Data: []byte{1}}, false},
	} {
		if got := aboutTable(tc.msg, "qguard"); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
}

// TestStateShape: two installs of the same configuration differ only in
// generation numbers and anonymous set names, which shape hides; a chain
// policy changed by someone else stays visible.
func TestStateShape(t *testing.T) {
	mk := func(gen, anon string, policy int) *tableState {
		jump := testRule("generation "+gen, &expr.Verdict{Kind: expr.VerdictJump, Chain: "forward_g" + gen})
		steer := testRule("steer to queue", &expr.Lookup{SourceRegister: 1, SetName: "__set" + anon},
			&expr.Lookup{SourceRegister: 1, SetName: "steer_iifname_g" + gen}, &expr.Counter{})
		return &tableState{Present: true, Chains: map[string]chainState{
			"forward":         {Hook: fmt.Sprintf("type filter hook 2 priority 0 policy %d", policy), Rules: []ruleState{ruleKey(jump)}},
			"forward_g" + gen: {Hook: "regular", Rules: []ruleState{ruleKey(steer)}},
		}, Sets: map[string]string{"__set" + anon: "", "steer_iifname_g" + gen: "a"}}
	}
	a, b := mk("3", "0", 1), mk("4", "7", 1)
	if d := a.diff(b, "qguard"); d == nil {
		t.Fatal("different generations compare equal unshaped")
	}
	if d := a.shape().diff(b.shape(), "qguard"); d != nil {
		t.Errorf("same configuration, other generation: %v", d)
	}
	if d := a.shape().diff(mk("4", "7", 0).shape(), "qguard"); len(d) != 1 || !strings.Contains(d[0], "policy 0") {
		t.Errorf("policy change hidden by shape: %v", d)
	}
}
