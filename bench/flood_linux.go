package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/xdp"
)

// floodSource is the blocked source of the flood modes, an extra client address.
func floodSource() netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 1, 200}) }

// floodSetup prepares a flood mode's drop and returns its drop counter and
// how to undo it.
type floodSetup func(e *env, r *modeRun) (dropped func() (uint64, error), undo func() error, err error)

// startXDPProbe skips a mode where XDP programs do not load.
func startXDPProbe(ctx context.Context, e *env, m *Mode, q uint16) (handler, error) {
	if err := xdp.Probe(); err != nil {
		return nil, skipf("XDP unusable here: %v", err)
	}
	return nil, nil
}

// measureFlood runs a blocked-source flood against the firewall and
// measures how many packets it drops per second and what that costs the
// machine (all CPUs' irq and softirq ticks plus the handler's CPU).
func measureFlood(setup floodSetup) measureFunc {
	return func(ctx context.Context, e *env, r *modeRun) (s Sample, err error) {
		dropped, undo, err := setup(e, r)
		if err != nil {
			return s, err
		}
		defer func() {
			if uerr := undo(); uerr != nil && err == nil {
				err = uerr
			}
		}()
		g, _, err := newFloodGenerator(e.t, []netip.Addr{floodSource()}, 16, e.t.ServerIP4, e.t.ServerIP6, e.gen.kind)
		if err != nil {
			return s, err
		}
		defer g.close()
		r.progress("flood")
		g.runUDP(e.genThread(), 64)
		defer g.halt()
		if s, _, _, err = e.window(ctx, r, g, dropped, nil); err != nil {
			return s, err
		}
		if s.Dropped == 0 {
			return s, fmt.Errorf("measure %s: nothing dropped in %.1fs (sent %d, %d reached the sink)", r.m.Name, s.Seconds, s.Sent, s.Delivered)
		}
		return s, nil
	}
}

// floodXDP attaches qguard's XDP program to the firewall's client link and
// blocks the flood source in it.
func floodXDP(e *env, r *modeRun) (func() (uint64, error), func() error, error) {
	var f *xdp.Filter
	err := e.t.Firewall.Do(func() error {
		var err error
		f, err = xdp.Attach(&xdp.Config{Interfaces: []string{e.t.FwClientLink}})
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("attach XDP to %s: %w", e.t.FwClientLink, err)
	}
	if err := f.BlockSource(floodSource(), time.Hour); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("block %s in XDP: %w", floodSource(), err)
	}
	return func() (uint64, error) { return f.Stats().Dropped(), nil }, f.Close, nil
}

// floodQueue counts what the drop handler dropped: what the kernel queued
// (each queued packet takes an id) minus what never reached it (queue
// full, socket full) and what still waits. The mode steers like the
// other queue modes.
func floodQueue(e *env, r *modeRun) (func() (uint64, error), func() error, error) {
	dropped := func() (uint64, error) {
		st, err := readNFQStats(e.t.Firewall)
		if err != nil {
			return 0, err
		}
		for _, q := range st {
			if q.Queue == r.q {
				return uint64(q.IDSequence) - uint64(q.QueueDropped) - uint64(q.UserDropped) - uint64(q.QueueTotal), nil
			}
		}
		return 0, fmt.Errorf("read queue %d stats: queue not bound", r.q)
	}
	return dropped, func() error { return nil }, nil
}

// floodNFTSetTable drops sources in a set at the earliest nftables hook.
const floodNFTSetTable = "qgbflood"

// floodNFTSet installs a prerouting chain that drops sources in a set,
// holding the flood source, and counts them.
func floodNFTSet(e *env, r *modeRun) (func() (uint64, error), func() error, error) {
	f, err := os.Open(e.t.Firewall.Path())
	if err != nil {
		return nil, nil, fmt.Errorf("open firewall namespace: %w", err)
	}
	conn := func() (*nftables.Conn, error) { return nftables.New(nftables.WithNetNSFd(int(f.Fd()))) }
	c, err := conn()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("install nftables block set: %w", err)
	}
	defer c.CloseLasting()
	t := c.AddTable(&nftables.Table{Name: floodNFTSetTable, Family: nftables.TableFamilyINet})
	set := &nftables.Set{Table: t, Name: "blocked4", KeyType: nftables.TypeIPAddr}
	src := floodSource().As4()
	if err := c.AddSet(set, []nftables.SetElement{{Key: src[:]}}); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("install nftables block set: %w", err)
	}
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "pre", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-300), Policy: &policy})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("install nftables block set: %w", err)
	}
	dropped := func() (uint64, error) {
		c, err := conn()
		if err != nil {
			return 0, fmt.Errorf("read nftables block counter: %w", err)
		}
		defer c.CloseLasting()
		rs, err := c.GetRules(t, ch)
		if err != nil {
			return 0, fmt.Errorf("read nftables block counter: %w", err)
		}
		for _, r := range rs {
			for _, x := range r.Exprs {
				if ctr, ok := x.(*expr.Counter); ok {
					return ctr.Packets, nil
				}
			}
		}
		return 0, fmt.Errorf("read nftables block counter: no counter in chain pre")
	}
	undo := func() error {
		defer f.Close()
		c, err := conn()
		if err != nil {
			return fmt.Errorf("remove nftables block set: %w", err)
		}
		defer c.CloseLasting()
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("remove nftables block set: %w", err)
		}
		return nil
	}
	return dropped, undo, nil
}
