package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
	"github.com/qguard/qguard/xdp"

	"github.com/qguard/qguard/verdict/packet"
)

// xdpProbe says whether XDP programs load here (nil) or why not.
func xdpProbe() error { return xdp.Probe() }

// floodSrc is the blocked source of the flood modes, an extra client address.
var floodSrc = netip.MustParseAddr("198.18.1.200")

// startExtra starts the modes built on packages beyond the queue engine.
func startExtra(ctx context.Context, e *env, m Mode, num uint16) (handler, string, error) {
	switch m.kind {
	case "policy":
		return e.procOrSkip(e.startQGuardPeer(ctx, m, num, "policy"))
	case "offload":
		return e.startOffload(ctx, m, num)
	case "flood-queue":
		return e.procOrSkip(e.startQGuardPeer(ctx, m, num, "drop"))
	}
	return nil, "", fmt.Errorf("start mode %s: unknown kind %q", m.Name, m.kind)
}

// benchPolicy is n rules that never match the benchmark's traffic (other
// sources, other ports, mixed protocols) ahead of the default accept, so a
// flow's first packet walks the whole policy, as a real policy's would.
func benchPolicy(n int) *verdict.Policy {
	p := &verdict.Policy{Default: verdict.ActionAccept}
	for i := range n {
		r := verdict.Rule{Name: fmt.Sprintf("r%d", i), Action: verdict.ActionDrop}
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 32)
		switch i % 3 {
		case 0:
			r.Match = verdict.Match{Protos: []uint8{packet.ProtoUDP}, Src: []netip.Prefix{src}}
		case 1:
			r.Match = verdict.Match{Protos: []uint8{packet.ProtoTCP}, DstPorts: []verdict.PortRange{{Lo: uint16(1000 + i), Hi: uint16(1000 + i)}}}
		default:
			r.Match = verdict.Match{Protos: []uint8{packet.ProtoUDP}, DstPorts: []verdict.PortRange{{Lo: uint16(20000 + i), Hi: uint16(20000 + i)}}}
		}
		p.Rules = append(p.Rules, r)
	}
	return p
}

// decider runs a verdict pipeline in a queue handler the way the daemon
// does: queue metadata into verdict.Meta, Decide, map the decision.
type decider struct {
	pipe      *verdict.Pipeline
	meta      verdict.Meta
	dec       verdict.Decision
	flowMark  uint32 // mark for Offload decisions (0: none)
	undecided atomic.Uint64
}

func (d *decider) handle(p *queue.Packet) {
	d.meta = verdict.Meta{Queue: p.Queue, Hook: p.Hook, InIf: p.InIf, OutIf: p.OutIf, Mark: p.Mark,
		HasMark: p.Has&queue.AttrMark != 0, HasCT: p.Has&queue.AttrCTInfo != 0, CTState: p.CTState}
	d.pipe.Decide(p.Payload, &d.meta, &d.dec)
	switch {
	case d.dec.Action == verdict.ActionAccept && d.dec.Offload && d.flowMark != 0:
		// The kernel's chain sees the mark on the repeated packet, stores
		// it in conntrack and forwards the rest of the flow itself.
		p.SetMark(d.flowMark)
		p.Repeat()
	case d.dec.Action == verdict.ActionAccept:
		p.Accept()
	case d.dec.Action == verdict.ActionUnset:
		d.undecided.Add(1)
		p.Accept()
	default:
		p.Drop()
	}
}

// offloadHandler is the queue plus qguard's nftables table in the firewall.
type offloadHandler struct {
	*procHandler
	mgr  *rules.Manager
	nsFd *os.File // the manager works through it until Remove
	fw   topo.NS
}

func (o *offloadHandler) close() error {
	err := o.procHandler.close()
	if rerr := o.mgr.Remove(); rerr != nil {
		// A table left behind would steer the next modes into a queue
		// nobody reads: remove it by other means, and report.
		_ = o.fw.Run("nft", "delete", "table", "inet", "qgbench")
		if err == nil {
			err = fmt.Errorf("remove qguard table: %w", rerr)
		}
	}
	return errors.Join(err, o.nsFd.Close())
}

// startOffload binds the queue and installs qguard's own table (steering
// through its queue rule, and the mark-driven offload) in the firewall.
// The mode steers with the rules package (Mode.selfSteer), so runMode adds
// no iptables rule.
func (e *env) startOffload(ctx context.Context, m Mode, num uint16) (handler, string, error) {
	f, err := os.Open(e.t.Firewall.Path())
	if err != nil {
		return nil, "", fmt.Errorf("open firewall namespace: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	caps, err := rules.ProbeNS(int(f.Fd()))
	if err != nil {
		return nil, "", fmt.Errorf("probe nftables in firewall namespace: %w", err)
	}
	if _, err := caps.Best(); err != nil {
		return nil, fmt.Sprintf("no usable queue expression: %v", err), nil
	}
	// The peer's handler marks offloaded flows with rules.DefaultMarks.
	p, skip, err := e.startQGuardPeer(ctx, m, num, "offload")
	if p == nil {
		return nil, skip, err
	}
	marks := rules.DefaultMarks
	mgr, err := rules.New(&rules.Config{
		Table: "qgbench", Hooks: []rules.Hook{{Name: "forward", Priority: 0}},
		Steer:    rules.Steer{Protocols: []string{"udp"}},
		QueueNum: num, QueueCount: 1, Marks: marks, Offload: true, NetNS: int(f.Fd()),
	})
	if err == nil {
		err = mgr.Apply()
	}
	if err != nil {
		_ = p.close()
		return nil, "", fmt.Errorf("install qguard table in firewall namespace: %w", err)
	}
	ok = true
	return &offloadHandler{procHandler: p, mgr: mgr, nsFd: f, fw: e.t.Firewall}, "", nil
}

// flood runs a blocked-source flood against the firewall and measures
// how many packets it drops per second and what that costs the machine.
func (e *env) flood(ctx context.Context, m Mode, num uint16, h handler, progress func(string)) (s Sample, err error) {
	var dropped func() (uint64, error)
	var cleanup func() error
	switch m.kind {
	case "flood-xdp":
		var f *xdp.Filter
		err = e.t.Firewall.Do(func() error {
			var err error
			f, err = xdp.Attach(&xdp.Config{Interfaces: []string{e.t.FwClientLink}})
			return err
		})
		if err != nil {
			return s, fmt.Errorf("attach XDP to %s: %w", e.t.FwClientLink, err)
		}
		cleanup = f.Close
		if err := f.BlockSource(floodSrc, time.Hour); err != nil {
			_ = f.Close()
			return s, fmt.Errorf("block %s in XDP: %w", floodSrc, err)
		}
		dropped = func() (uint64, error) { return f.Stats().Dropped(), nil }
	case "flood-nftset":
		if err := nftFloodSet(e.t.Firewall); err != nil {
			return s, err
		}
		cleanup = func() error { return e.t.Firewall.Run("nft", "delete", "table", "inet", "qgbflood") }
		dropped = func() (uint64, error) { return nftFloodCount(e.t.Firewall) }
	case "flood-queue":
		if err := steer(e.t.Firewall, "udp", num, 1); err != nil {
			return s, err
		}
		cleanup = func() error { return unsteer(e.t.Firewall) }
		// The handler process drops all it reads: what the kernel queued
		// (each queued packet takes an id) minus what never reached it
		// (queue full, socket full) and what still waits.
		dropped = func() (uint64, error) {
			st, err := readNFQStats(e.t.Firewall)
			if err != nil {
				return 0, err
			}
			for _, q := range st {
				if q.Queue == num {
					return q.IDSequence - q.Dropped - q.UserDropped - q.Total, nil
				}
			}
			return 0, fmt.Errorf("read queue %d stats: queue not bound", num)
		}
	default:
		return s, fmt.Errorf("flood mode %s: unknown kind %q", m.Name, m.kind)
	}
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	g, _, err := newFloodGenerator(e.t, []netip.Addr{floodSrc}, 16, e.t.ServerIP4, e.t.ServerIP6, e.gen.kind)
	if err != nil {
		return s, err
	}
	defer g.close()
	progress("flood")
	g.runUDP(*e.cfg.GenCPU, 64)
	defer g.halt()
	if !sleepCtx(ctx, e.cfg.Warmup) {
		return s, ctx.Err()
	}
	type point struct {
		at                   time.Time
		sent, drop, deliv    uint64
		sys, hcpu            time.Duration
		qdrop, udrop, queued uint64
	}
	take := func() (p point, err error) {
		p.sent = g.sent.n.Load()
		p.deliv, _, _ = e.sink.counts()
		if p.drop, err = dropped(); err != nil {
			return p, err
		}
		if p.sys, err = softirqCPU(); err != nil {
			return p, err
		}
		if h != nil {
			if p.hcpu, err = h.cpu(); err != nil {
				return p, err
			}
		}
		if m.Queues > 0 {
			st, err := readNFQStats(e.t.Firewall)
			if err != nil {
				return p, err
			}
			p.qdrop, p.udrop, p.queued = nfqTotals(st, num, m.Queues)
		}
		p.at = time.Now()
		return p, nil
	}
	a, err := take()
	if err != nil {
		return s, err
	}
	if !sleepCtx(ctx, e.cfg.Duration) {
		return s, ctx.Err()
	}
	b, err := take()
	if err != nil {
		return s, err
	}
	s = Sample{
		Seconds: b.at.Sub(a.at).Seconds(), Sent: b.sent - a.sent, Delivered: b.deliv - a.deliv,
		Dropped: b.drop - a.drop, SystemCPU: int64(b.sys-a.sys) + int64(b.hcpu-a.hcpu), HandlerCPU: int64(b.hcpu - a.hcpu),
		QueueDropped: b.qdrop - a.qdrop, UserDropped: b.udrop - a.udrop, Queued: b.queued - a.queued,
	}
	if s.Dropped == 0 {
		return s, fmt.Errorf("measure %s: nothing dropped in %.1fs (sent %d, %d reached the sink)", m.Name, s.Seconds, s.Sent, s.Delivered)
	}
	return s, nil
}

// nftFloodSet installs a prerouting chain that drops sources in a set,
// holding the flood source, at the earliest nftables hook.
func nftFloodSet(fw topo.NS) error {
	script := fmt.Sprintf(`table inet qgbflood {
	set blocked4 { type ipv4_addr; elements = { %s } }
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip saddr @blocked4 counter drop
	}
}
`, floodSrc)
	cmd := exec.Command("ip", "netns", "exec", fw.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install nftables block set: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func nftFloodCount(fw topo.NS) (uint64, error) {
	out, err := fw.Output("nft", "list", "chain", "inet", "qgbflood", "pre")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "packets" {
			var n uint64
			if _, err := fmt.Sscan(f[i+1], &n); err == nil {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("read nftables block counter: no packet count in %q", out)
}
