package rules

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGoldenPolicy checks the netlink bytes of the compiler's own
// expressions against values written down from the UAPI headers
// (linux/netfilter/nf_tables.h), not against the library's encoder.
func TestGoldenPolicy(t *testing.T) {
	if !littleEndian() {
		t.Skip("meta registers are host-endian; expected bytes are little-endian")
	}
	cfg := DefaultConfig()
	cfg.Mode, cfg.Policy = KernelFirst, samplePolicy()
	_, f := applyFake(t, cfg, compatOnly)
	rs := rulesOf(t, f.msgs)

	// The hook's generation chain jumps to its policy chain for steered
	// packets in ct state new (NF_CT_STATE_BIT(IP_CT_NEW) = 8).
	r := findRule(t, rs, "new connection to policy")
	jump := cat(nla(unix.NFTA_DATA_VERDICT|unix.NLA_F_NESTED, cat(
		nla(unix.NFTA_VERDICT_CODE, bu32(uint32(0xfffffffd))), // NFT_JUMP = -3
		nla(unix.NFTA_VERDICT_CHAIN, []byte("forward_policy_g1\x00")))))
	if got := exprData(t, r, "immediate", 0); !bytes.Contains(got, jump) {
		t.Errorf("jump:\n got %x\nwant %x inside", got, jump)
	}
	if got, want := exprData(t, r, "bitwise", 1), bitwise([]byte{8, 0, 0, 0}, []byte{0, 0, 0, 0}); !bytes.Equal(got, want) {
		t.Errorf("ct state new mask:\n got %x\nwant %x", got, want)
	}

	// meta skuid == 1000 (NFT_META_SKUID = 10, host order), then skgid
	// (11) turned to network order (NFT_BYTEORDER_HTON = 1, len 4, size 4)
	// before the interval set lookup.
	var owner goldenRule
	for _, x := range rs {
		if x.comment == "qguard: rule owner" {
			owner = x
		}
	}
	if owner.comment == "" {
		t.Fatal("no rule owner")
	}
	if got := attrs(t, exprData(t, owner, "meta", 1)); !bytes.Equal(got[unix.NFTA_META_KEY], bu32(unix.NFT_META_SKUID)) {
		t.Errorf("skuid load: %x", exprData(t, owner, "meta", 1))
	}
	if got := exprData(t, owner, "cmp", 1); !bytes.Contains(got, nla(unix.NFTA_DATA_VALUE, []byte{0xe8, 0x03, 0, 0})) {
		t.Errorf("skuid == 1000: %x", got)
	}
	if got := attrs(t, exprData(t, owner, "meta", 2)); !bytes.Equal(got[unix.NFTA_META_KEY], bu32(unix.NFT_META_SKGID)) {
		t.Errorf("skgid load: %x", exprData(t, owner, "meta", 2))
	}
	bo := attrs(t, exprData(t, owner, "byteorder", 0))
	if !bytes.Equal(bo[unix.NFTA_BYTEORDER_OP], bu32(unix.NFT_BYTEORDER_HTON)) || !bytes.Equal(bo[unix.NFTA_BYTEORDER_LEN], bu32(4)) ||
		!bytes.Equal(bo[unix.NFTA_BYTEORDER_SIZE], bu32(4)) {
		t.Errorf("byteorder: %v", bo)
	}

	// Every rule of the policy chain carries a counter and one verdict; a
	// kernel accept merges accept_flow into the ct mark first.
	var policy []goldenRule
	for _, x := range rs {
		if x.chain == "forward_policy_g1" {
			policy = append(policy, x)
		}
	}
	names := []string{}
	for _, x := range policy {
		names = append(names, strings.TrimPrefix(x.comment, "qguard: "))
		has := map[string]int{}
		for _, e := range x.exprs {
			has[e.name]++
		}
		if has["counter"] != 1 || has["immediate"]+has["reject"]+has["target"] != 1 {
			t.Errorf("%s: expressions %v", x.comment, has)
		}
		if strings.HasPrefix(x.comment, "qguard: rule internal") {
			if got, want := exprData(t, x, "bitwise", 0), bitwise([]byte{0xff, 0xff, 0, 0xff}, []byte{0, 0, 1, 0}); !bytes.Equal(got, want) {
				t.Errorf("accept_flow merge:\n got %x\nwant %x", got, want)
			}
		}
	}
	want := "rule telnet,rule telnet,rule dns-names -> queue: dns matcher,rule internal,rule internal,rule ifaces,rule owner," +
		"rule lab-reject,rule lab-reject,rule udp-some,default"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("policy chain:\n got %s\nwant %s", got, want)
	}
}

func TestPlan(t *testing.T) {
	p := samplePolicy()
	got := FormatPlan(p.Plan(KernelFirst))
	want := "kernel  telnet\nqueue   dns-names (dns matcher)\nkernel  internal\nkernel  v6-only-dst\nkernel  ifaces\n" +
		"kernel  icmp-ports\nkernel  owner\nkernel  lab-reject\nkernel  udp-some\nkernel  (default)\n"
	if got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
	if got := FormatPlan(p.Plan(QueueAll)); !strings.HasPrefix(got, "queue   telnet (mode queue-all)\n") {
		t.Errorf("queue-all plan:\n%s", got)
	}
}

func TestPolicyCheck(t *testing.T) {
	for _, p := range []*Policy{
		{},
		{Default: ActionAccept, Rules: []PolicyRule{{Name: "x"}}},
		{Default: ActionAccept, Rules: []PolicyRule{{Name: "x", Action: ActionDrop, Family: 5}}},
		{Default: ActionAccept, Rules: []PolicyRule{{Name: "x", Action: ActionDrop, DPorts: []PortRange{{Lo: 9, Hi: 8}}}}},
		{Default: ActionAccept, Rules: []PolicyRule{{Name: "x", Action: ActionDrop, UIDs: []IDRange{{9, 8}}}}},
		{Default: ActionAccept, Rules: []PolicyRule{{Name: "x", Action: ActionDrop, InIfs: []string{"a-very-long-interface"}}}},
	} {
		cfg := DefaultConfig()
		cfg.Mode, cfg.Policy = KernelFirst, p
		if _, err := cfg.normalize(); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
	cfg := DefaultConfig()
	cfg.Mode = KernelFirst
	if _, err := cfg.normalize(); err == nil {
		t.Error("kernel-first without a policy accepted")
	}
}

// samplePolicy has one rule of each kind the compiler knows.
func samplePolicy() *Policy {
	return &Policy{Default: ActionDrop, Rules: []PolicyRule{
		{Name: "telnet", Protos: []uint8{6}, DPorts: []PortRange{{Lo: 23, Hi: 23}}, Action: ActionReject},
		{Name: "dns-names", DPorts: []PortRange{{Lo: 53, Hi: 53}}, Action: ActionDrop, Queue: "dns matcher"},
		{Name: "internal", Src: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:db8::/32")},
			HasSrc: true, DPorts: []PortRange{{Lo: 8000, Hi: 8100}}, Action: ActionAccept},
		{Name: "v6-only-dst", Dst: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, HasDst: true, Family: 6, Action: ActionAccept},
		{Name: "ifaces", InIfs: []string{"eth0"}, OutIfs: []string{"eth1", "eth2"}, Protos: []uint8{17, 1}, Action: ActionDrop},
		{Name: "icmp-ports", Protos: []uint8{1}, DPorts: []PortRange{{Lo: 1, Hi: 2}}, Action: ActionDrop},
		{Name: "owner", UIDs: []IDRange{{1000, 1000}}, GIDs: []IDRange{{10, 20}, {30, 30}}, Family: 4, Action: ActionAccept},
		{Name: "lab-reject", Src: []netip.Prefix{netip.MustParsePrefix("198.18.1.50/32")}, HasSrc: true,
			DPorts: []PortRange{{Lo: 7777, Hi: 7777}, {Lo: 7780, Hi: 7790}}, Action: ActionReject},
		{Name: "udp-some", Protos: []uint8{17}, SPorts: []PortRange{{Lo: 1, Hi: 1}, {Lo: 5, Hi: 9}}, Action: ActionAccept},
	}}
}
