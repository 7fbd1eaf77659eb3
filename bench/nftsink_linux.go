package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

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

// nftSinkReader reads the sink's counters over netlink, in the sink's
// namespace: a read costs microseconds, where running `nft list` costs a
// process, which could land on the handler's CPU inside a measured window.
type nftSinkReader struct {
	ns *os.File
}

func openNFTSink(ns topo.NS) (*nftSinkReader, error) {
	f, err := os.Open(ns.Path())
	if err != nil {
		return nil, fmt.Errorf("open namespace %s for the nftables sink: %w", ns.Name, err)
	}
	return &nftSinkReader{ns: f}, nil
}

func (r *nftSinkReader) Close() error { return r.ns.Close() }

// read returns the packets and UDP payload bytes the sink's counters saw.
func (r *nftSinkReader) read() (pkts, payload uint64, err error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(r.ns.Fd())))
	if err != nil {
		return 0, 0, fmt.Errorf("read nftables sink counters: %w", err)
	}
	defer c.CloseLasting()
	rs, err := c.GetRules(&nftables.Table{Name: nftSinkTable, Family: nftables.TableFamilyNetdev}, &nftables.Chain{Name: "in"})
	if err != nil {
		return 0, 0, fmt.Errorf("read nftables sink counters: %w", err)
	}
	return sumNFTSink(rs)
}

// sumNFTSink adds up the two rules' counters. The ingress hook sees the
// packet from its IP header on, so the counted bytes are IP lengths: the
// headers come off per family, told by the rule's meta protocol match.
func sumNFTSink(rs []*nftables.Rule) (pkts, payload uint64, err error) {
	rules := 0
	for _, r := range rs {
		var ctr *expr.Counter
		hdr := uint64(0)
		proto := false // the last expression loaded meta protocol
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				proto = e.Key == expr.MetaKeyPROTOCOL
				continue
			case *expr.Counter:
				ctr = e
			case *expr.Cmp:
				if proto && len(e.Data) == 2 {
					switch binary.BigEndian.Uint16(e.Data) {
					case unix.ETH_P_IP:
						hdr = 20 + 8
					case unix.ETH_P_IPV6:
						hdr = 40 + 8
					}
				}
			}
			proto = false
		}
		if ctr == nil || hdr == 0 {
			continue
		}
		if ctr.Bytes < ctr.Packets*hdr {
			return 0, 0, fmt.Errorf("read nftables sink counter: %d bytes for %d packets", ctr.Bytes, ctr.Packets)
		}
		pkts += ctr.Packets
		payload += ctr.Bytes - ctr.Packets*hdr
		rules++
	}
	if rules != 2 {
		return 0, 0, fmt.Errorf("read nftables sink counters: want 2 counting rules (IPv4, IPv6), found %d", rules)
	}
	return pkts, payload, nil
}
