package rules

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

// samplePolicy has one rule of each kind the compiler knows.
func samplePolicy() *Policy {
	return &Policy{Default: ActionDrop, Rules: []PolicyRule{
		{Name: "telnet", Protos: []uint8{6}, DPorts: []PortRange{{23, 23}}, Action: ActionReject},
		{Name: "dns-names", DPorts: []PortRange{{53, 53}}, Action: ActionDrop, Queue: "dns matcher"},
		{Name: "internal", Src: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:db8::/32")},
			HasSrc: true, DPorts: []PortRange{{8000, 8100}}, Action: ActionAccept},
		{Name: "v6-only-dst", Dst: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, HasDst: true, Family: 6, Action: ActionAccept},
		{Name: "ifaces", InIfs: []string{"eth0"}, OutIfs: []string{"eth1", "eth2"}, Protos: []uint8{17, 1}, Action: ActionDrop},
		{Name: "icmp-ports", Protos: []uint8{1}, DPorts: []PortRange{{1, 2}}, Action: ActionDrop},
		{Name: "owner", UIDs: []IDRange{{1000, 1000}}, GIDs: []IDRange{{10, 20}, {30, 30}}, Family: 4, Action: ActionAccept},
		{Name: "udp-some", Protos: []uint8{17}, SPorts: []PortRange{{1, 1}, {5, 9}}, Action: ActionAccept},
	}}
}

func TestIntegrationCompileShow(t *testing.T) {
	_, fd := testNS(t)
	cfg := &Config{Table: "kf", Mode: KernelFirst, Policy: samplePolicy(), NetNS: fd,
		Steer: Steer{Protocols: []string{"tcp", "udp", "icmp", "icmpv6"}}, Bypass: true}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(); err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	got, err := ShowNS(fd, "kf")
	if err != nil {
		t.Fatal(err)
	}
	got = got[strings.Index(got, "\n")+1:] // the probe line depends on the kernel
	const golden = "testdata/compile_show.txt"
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("rules show:\n%s\nwant:\n%s", got, want)
	}
}
