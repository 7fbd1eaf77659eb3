package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"

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

// nftSink counts and drops the flood port's UDP at the sink link's ingress
// hook, before the sink's IP stack: a packet counts as delivered when it
// reaches the sink's interface, and the sink spends no socket receive (and
// no CPU 0 time in a reader thread) on it. One rule per family, so bytes
// convert to UDP payload exactly. The counters are read over netlink in
// the sink's namespace: a read costs microseconds, where running `nft list`
// would cost a process, which could land on the handler's CPU inside a
// measured window.
type nftSink struct {
	ns *os.File
	// pkts and bytes are the last values read: a failed read keeps them,
	// so the phase shows fewer deliveries, never more.
	pkts, bytes atomic.Uint64
}

// startNFTSink installs the counting table in ns on link.
func startNFTSink(ns topo.NS, link string) (*nftSink, error) {
	f, err := os.Open(ns.Path())
	if err != nil {
		return nil, fmt.Errorf("open namespace %s for the nftables sink: %w", ns.Name, err)
	}
	s := &nftSink{ns: f}
	if err := s.install(link); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *nftSink) install(link string) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(s.ns.Fd())))
	if err != nil {
		return fmt.Errorf("install nftables sink counter on %s: %w", link, err)
	}
	defer c.CloseLasting()
	t := c.AddTable(&nftables.Table{Name: nftSinkTable, Family: nftables.TableFamilyNetdev})
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "in", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter, Device: link, Policy: &policy})
	for _, ethType := range []uint16{unix.ETH_P_IP, unix.ETH_P_IPV6} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, ethType)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, portSink)},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install nftables sink counter on %s: %w", link, err)
	}
	return nil
}

func (s *nftSink) kind() string { return sinkNFT }

func (s *nftSink) counts() (pkts, bytes uint64) {
	if p, b, err := s.read(); err == nil {
		s.pkts.Store(p)
		s.bytes.Store(b)
	}
	return s.pkts.Load(), s.bytes.Load()
}

// close leaves the table: it goes with the namespace.
func (s *nftSink) close() { _ = s.ns.Close() }

// read returns the packets and UDP payload bytes the sink's counters saw.
func (s *nftSink) read() (pkts, payload uint64, err error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(s.ns.Fd())))
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
