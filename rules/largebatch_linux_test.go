package rules

import (
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIntegrationLargePolicy installs and replaces a kernel-first policy
// of 300 rules: thousands of messages in one batch, whose acknowledgements
// overflowed the default netlink receive buffer (ENOBUFS: the daemon
// failed to start with the benchmark's 100-rule policy).
func TestIntegrationLargePolicy(t *testing.T) {
	_, fd := testNS(t)
	pol := &Policy{Default: ActionAccept}
	for i := range 300 {
		r := PolicyRule{Name: fmt.Sprintf("r%d", i), Action: ActionDrop, Protos: []uint8{unix.IPPROTO_UDP}}
		switch i % 3 {
		case 0:
			r.Src, r.HasSrc = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 32)}, true
		case 1:
			r.DPorts = []PortRange{{Lo: uint16(1000 + i), Hi: uint16(1000 + i)}}
		default:
			r.Protos = []uint8{unix.IPPROTO_TCP}
			r.DPorts = []PortRange{{Lo: uint16(20000 + i), Hi: uint16(20100 + i)}}
		}
		pol.Rules = append(pol.Rules, r)
	}
	cfg := &Config{Table: "big", Mode: KernelFirst, Policy: pol, NetNS: fd, Hooks: []Hook{{Name: "forward"}, {Name: "input"}},
		Steer: Steer{Protocols: []string{"tcp", "udp"}}, Bypass: true}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(); err != nil {
		t.Fatalf("install 300 rules: %v", err)
	}
	defer m.Remove()
	if err := m.Replace(cfg); err != nil {
		t.Fatalf("replace 300 rules: %v", err)
	}
	if diff, err := m.Verify(); err != nil || diff != nil {
		t.Errorf("verify: %v %v", diff, err)
	}
}
