package bench

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/qguard/qguard/internal/topo"
)

// Sink kinds, as reported in the output header.
const (
	sinkNFT    = "nftables ingress counter"
	sinkSocket = "UDP sockets"
)

// nftSinkTable is the sink namespace's counting table.
const nftSinkTable = "qgbsink"

// installNFTSink counts and drops the flood port's UDP at the sink link's
// ingress hook, before the sink's IP stack: a packet counts as delivered
// when it reaches the sink's interface, and the sink spends no socket
// receive (and no CPU 0 time in a reader thread) on it. One rule per
// family, so bytes convert to UDP payload exactly.
func installNFTSink(ns topo.NS, link string) error {
	script := fmt.Sprintf(`table netdev %s {
	chain in {
		type filter hook ingress device %q priority 0; policy accept;
		meta protocol ip udp dport %d counter drop
		meta protocol ip6 udp dport %d counter drop
	}
}
`, nftSinkTable, link, portSink, portSink)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install nftables sink counter on %s: %w: %s", link, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// readNFTSink returns the packets and UDP payload bytes the sink's
// counters saw.
func readNFTSink(ns topo.NS) (pkts, payload uint64, err error) {
	out, err := ns.Output("nft", "list", "table", "netdev", nftSinkTable)
	if err != nil {
		return 0, 0, err
	}
	return parseNFTSink(out)
}

// parseNFTSink reads the two rules' counters from `nft list table`. The
// ingress hook sees the packet from its IP header on, so the counted
// bytes are IP lengths: the headers come off per family.
func parseNFTSink(out string) (pkts, payload uint64, err error) {
	rules := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		var p, b uint64
		var ok bool
		for i := 0; i+3 < len(f); i++ {
			if f[i] == "packets" && f[i+2] == "bytes" {
				_, e1 := fmt.Sscan(f[i+1], &p)
				_, e2 := fmt.Sscan(f[i+3], &b)
				ok = e1 == nil && e2 == nil
				break
			}
		}
		if !ok {
			continue
		}
		hdr := uint64(20 + 8)
		if strings.Contains(line, "protocol ip6") {
			hdr = 40 + 8
		}
		if b < p*hdr {
			return 0, 0, fmt.Errorf("read nftables sink counter: %d bytes for %d packets in %q", b, p, line)
		}
		pkts += p
		payload += b - p*hdr
		rules++
	}
	if rules != 2 {
		return 0, 0, fmt.Errorf("read nftables sink counters: want 2 rules with counters, found %d in %q", rules, out)
	}
	return pkts, payload, nil
}
