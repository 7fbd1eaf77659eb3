package rules

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func TestFormatNftSpelling(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{nftDuration(2 * time.Minute), "2m"},
		{nftDuration(90 * time.Minute), "1h30m"},
		{nftDuration(36 * time.Hour), "1d12h"},
		{nftDuration(1500 * time.Millisecond), "1s500ms"},
		{flagNames(kindCTState, 4|2), "established,related"},
		{flagNames(kindCTState, 8), "new"},
		{flagNames(kindCTStatus, 8), "confirmed"},
		{flagNames(kindCTStatus, 1<<20), "0x100000"},
		{priorityName(0), "filter"},
		{priorityName(5), "filter + 5"},
		{priorityName(-150), "mangle"},
		{priorityName(-305), "raw - 5"},
		{priorityName(1000), "1000"},
		{verdictName(expr.VerdictJump), "jump"},
		{verdictName(9), "verdict 9"},
		{metaKeyName(expr.MetaKeySKGID), "skgid"},
		{metaKeyName(expr.MetaKeyPRIORITY), "key2"},
		{ctKeyName(expr.CtKeySTATUS), "status"},
		{ctKeyName(expr.CtKeyEXPIRATION), "key5"},
		{payloadOperand(&expr.Payload{Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}).text, "ip6 daddr"},
		{payloadOperand(&expr.Payload{Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}).text, "th dport"},
		{payloadOperand(&expr.Payload{Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 4}).text, "payload base 2 offset 2 len 4"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

func TestFormatIntervals(t *testing.T) {
	ports := intervalItems(kindPort, portElems([]PortRange{{Lo: 53, Hi: 53}, {Lo: 8000, Hi: 8100}, {Lo: 65000, Hi: 65535}}))
	if got := join(ports); got != "53, 8000-8100, 65000-65535" {
		t.Errorf("ports: %s", got)
	}
	addrs := intervalItems(kindAddr, prefixElems(mustPrefixes("10.0.0.0/8", "192.0.2.7/32", "198.51.100.0/25", "198.51.100.128/26"), false))
	if got := join(addrs); got != "10.0.0.0/8, 192.0.2.7, 198.51.100.0-198.51.100.191" {
		t.Errorf("addresses: %s", got)
	}
}

// TestFormatRuleAnonymousSet: a lookup in an anonymous set prints its
// contents, sorted as nft sorts them; an unknown set stays @name.
func TestFormatRuleAnonymousSet(t *testing.T) {
	r := &nftables.Rule{Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: "__set0"},
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{8, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}}
	sets := map[string]*setContent{"__set0": {elems: []nftables.SetElement{{Key: []byte{17}}, {Key: []byte{6}}, {Key: []byte{58}}}}}
	if got, want := formatRuleSets(r, sets), "meta l4proto { tcp, udp, ipv6-icmp } ct state new accept"; got != want {
		t.Errorf("%s\nwant %s", got, want)
	}
	if got, want := formatRule(r), "meta l4proto @__set0 ct state new accept"; got != want {
		t.Errorf("%s\nwant %s", got, want)
	}
}

func join(s []string) string { return strings.Join(s, ", ") }

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
