package ruletest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/qguard/qguard/internal/engine"
	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"

	"github.com/qguard/qguard/verdict/packet"
)

// defaultMarkMask is rules.Marks.Mask's default.
var defaultMarkMask = rules.DefaultMarks.Mask

// maxRecorded bounds the packets kept per flow for traces, maxFlows the
// flows: a file sends a few dozen; a runaway policy must not eat memory.
const (
	maxRecorded = 16
	maxFlows    = 10000
)

// engineFirewall is qguard's engine running in the firewall namespace: its
// queue bound there, its nftables table installed there, and a stage that
// keeps a copy of each undecided flow's packets for traces.
type engineFirewall struct {
	e    *engine.Engine
	rec  *recorder
	logs *logRecorder
	ns   *os.File
	// ifs are the firewall's interface indexes by name, for traces of
	// packets the kernel decided.
	ifs map[string]uint32
}

// fromClient says whether src is on the client side (not the firewall's
// own address, whose packets leave through the output hook).
func (fw *engineFirewall) fromClient(src netip.AddrPort) bool {
	for _, p := range []string{"198.18.1.0/24", "2001:db8:1::/64"} {
		if netip.MustParsePrefix(p).Contains(src.Addr()) && src.Addr() != netip.MustParseAddr("198.18.1.1") &&
			src.Addr() != netip.MustParseAddr("2001:db8:1::1") {
			return true
		}
	}
	return false
}

func startEngine(ctx context.Context, t *topo.Topology, f *File) (_ firewall, err error) {
	cfg, err := loadConfig(f)
	if err != nil {
		return nil, err
	}
	fw := &engineFirewall{rec: &recorder{flows: map[flowID][]recorded{}}, logs: &logRecorder{}}
	// The rules are installed through this descriptor; the queue binds in
	// the namespace of the thread calling New, hence the Do below.
	if fw.ns, err = os.Open(t.Firewall.Path()); err != nil {
		return nil, fmt.Errorf("open firewall namespace: %w", err)
	}
	defer func() {
		if err != nil {
			fw.ns.Close()
		}
	}()
	opts := &engine.Options{
		Logger: slog.New(fw.logs),
		Queue:  &engine.QueueRange{Num: 0, Count: 1},
		NoXDP:  true,
		Stages: []verdict.Stage{fw.rec},
		NetNS:  int(fw.ns.Fd()),
	}
	if err := t.Firewall.Do(func() (err error) {
		fw.ifs = map[string]uint32{}
		for name := range topologyIfaces {
			if ifi, err := net.InterfaceByName(name); err == nil {
				fw.ifs[name] = uint32(ifi.Index)
			}
		}
		fw.e, err = engine.New(cfg, opts)
		return err
	}); err != nil {
		return nil, err
	}
	if err := fw.e.Start(ctx); err != nil {
		_ = fw.e.Close()
		return nil, err
	}
	return fw, nil
}

func (fw *engineFirewall) Close() error {
	err := fw.e.Close()
	fw.ns.Close()
	return err
}

func (fw *engineFirewall) MarkMask() uint32 {
	if m := fw.e.Config().Rules.Marks.Mask; m != 0 {
		return m
	}
	return defaultMarkMask
}

func (fw *engineFirewall) Counters() map[string]uint64 {
	s := fw.e.Stats()
	out := map[string]uint64{}
	for _, r := range fw.e.RuleHits() {
		out["hits."+r.Name] = r.Hits
	}
	for _, q := range s.Queues {
		out["packets"] += q.Packets
		out["accepted"] += q.Accepted
		out["dropped"] += q.Dropped
		out["rejected"] += q.Rejected
		out["offloaded"] += q.Offloaded
		out["marked"] += q.Marked
		out["cached"] += q.Cached
		out["block_requests"] += q.Blocked
	}
	return out
}

// Explain traces the recorded packets of a flow: the first one the policy
// decides (rather than waits on for L7 data) names the rule.
func (fw *engineFirewall) Explain(src, dst netip.AddrPort, proto uint8) (string, string) {
	pkts := fw.rec.get(src, proto)
	if len(pkts) == 0 {
		const none = "no packet of this case reached qguard's queue"
		raw := synthPacket(src, dst, proto)
		if raw == nil || fw.e.Config().Rules.Mode != rules.KernelFirst {
			return "", none
		}
		// Kernel-first: the kernel decided what user space would have; the
		// trace of the probe's first packet says which rule and why.
		m := &verdict.Meta{InIf: fw.ifs["fw-c"], OutIf: fw.ifs["fw-s"], HasCT: true, CTState: verdict.CTNew}
		if !fw.fromClient(src) {
			m.InIf = 0
		}
		tr := fw.e.Trace(raw, m)
		return engineRuleName(tr.Rule), none + " (decided in the kernel); user space's trace of its first packet:\n" + tr.String()
	}
	var b strings.Builder
	rule := ""
	for i, p := range pkts {
		tr := fw.e.Trace(p.raw, &p.meta)
		if tr.Rule == verdict.RuleNamePending && i < len(pkts)-1 {
			continue
		}
		b.WriteString(tr.String())
		rule = engineRuleName(tr.Rule)
		if tr.Rule == verdict.RuleNamePending {
			rule = ""
		}
		break
	}
	return rule, b.String()
}

// recorder is a pipeline stage that decides nothing: it copies the
// packets of flows the policy has not decided yet, keyed by the
// initiator's address and port (ICMP: echo identifier).
type recorder struct {
	mu    sync.Mutex
	flows map[flowID][]recorded
}

type flowID struct {
	src   netip.AddrPort
	proto uint8
}

type recorded struct {
	raw  []byte
	meta verdict.Meta
}

func (r *recorder) Name() string { return "ruletest-recorder" }

func (r *recorder) Decide(c *verdict.Context, d *verdict.Decision) bool {
	if c.Reply || c.Packet == nil {
		return false
	}
	p := c.Packet
	port := p.SrcPort
	if p.Proto == packet.ProtoICMP || p.Proto == packet.ProtoICMPv6 {
		port = p.ICMPID
	}
	k := flowID{netip.AddrPortFrom(p.Src, port), p.Proto}
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.flows[k]; len(l) < maxRecorded && (ok || len(r.flows) < maxFlows) {
		r.flows[k] = append(l, recorded{raw: bytes.Clone(c.Raw), meta: *c.Meta})
	}
	return false
}

// get returns a flow's packets; an unspecified source address (a socket
// that was never connected) matches by port alone.
func (r *recorder) get(src netip.AddrPort, proto uint8) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !src.Addr().IsUnspecified() {
		return r.flows[flowID{netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), proto}]
	}
	for k, v := range r.flows {
		if k.proto == proto && k.src.Port() == src.Port() {
			return v
		}
	}
	return nil
}

func (fw *engineFirewall) Logged(src netip.AddrPort, proto uint8) []string {
	return fw.logs.rulesFor(src, proto)
}

// logRecorder is the engine's slog handler: it keeps the "decision" lines
// (rule option log) as values to look up by flow, and the text of
// everything else for setup errors.
type logRecorder struct {
	mu        sync.Mutex
	decisions []loggedDecision
	text      bytes.Buffer
}

type loggedDecision struct {
	rule  string
	src   netip.AddrPort
	proto uint8
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Message != "decision" {
		fmt.Fprintf(&l.text, "%s %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&l.text, " %s=%v", a.Key, a.Value)
			return true
		})
		l.text.WriteByte('\n')
		return nil
	}
	var d loggedDecision
	var addr netip.Addr
	var port uint16
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "rule":
			d.rule = a.Value.String()
		case "proto":
			d.proto = uint8(a.Value.Int64())
		case "src":
			addr, _ = netip.ParseAddr(a.Value.String())
		case "sport":
			port = uint16(a.Value.Int64())
		}
		return true
	})
	d.src = netip.AddrPortFrom(addr, port)
	if len(l.decisions) < 100000 {
		l.decisions = append(l.decisions, d)
	}
	return nil
}

func (l *logRecorder) rulesFor(src netip.AddrPort, proto uint8) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, d := range l.decisions {
		icmp := proto == packet.ProtoICMP || proto == packet.ProtoICMPv6 // logged without the echo id
		if d.proto == proto && (icmp || d.src.Port() == src.Port()) && (d.src.Addr() == src.Addr() || src.Addr().IsUnspecified()) && !contains(out, d.rule) {
			out = append(out, d.rule)
		}
	}
	return out
}
