package bench

import (
	"fmt"
	"strconv"

	"github.com/qguard/qguard/internal/topo"
)

// steer installs the xtables NFQUEUE rule in the firewall's FORWARD chain
// for IPv4 and IPv6 through iptables-nft (an nft compat expression: this
// kernel family may lack the native nft queue expression). No bypass: a
// packet with no listener is dropped and counted, never silently forwarded.
func steer(fw topo.NS, proto string, num uint16, count int) error {
	args := []string{"-A", "FORWARD", "-p", proto, "-j", "NFQUEUE"}
	if count > 1 {
		args = append(args, "--queue-balance", fmt.Sprintf("%d:%d", num, int(num)+count-1))
	} else {
		args = append(args, "--queue-num", strconv.Itoa(int(num)))
	}
	for _, tool := range []string{"iptables-nft", "ip6tables-nft"} {
		if err := fw.Run(append([]string{tool}, args...)...); err != nil {
			_ = unsteer(fw)
			return fmt.Errorf("install steering rule: %w", err)
		}
	}
	return nil
}

// unsteer removes what steer installed. The namespace is the harness's own,
// so flushing its FORWARD chains touches nobody else.
func unsteer(fw topo.NS) error {
	var first error
	for _, tool := range []string{"iptables-nft", "ip6tables-nft"} {
		if err := fw.Run(tool, "-F", "FORWARD"); err != nil && first == nil {
			first = fmt.Errorf("remove steering rule: %w", err)
		}
	}
	return first
}
