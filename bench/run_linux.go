package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/topo"
)

// handler is a running queue listener (or nothing, for kernel-only).
type handler interface {
	// cpu is the handler's CPU time so far.
	cpu() (time.Duration, error)
	// userSys splits it (tick resolution) into user and system time.
	userSys() (user, sys time.Duration, err error)
	close() error
}

// env is what every mode of one Run shares.
type env struct {
	cfg     Config
	t       *topo.Topology
	sink    *sink
	gen     *generator
	srcs    []netip.Addr // client flow sources, both families
	tmp     string
	cPeer   string // path of the built C peer
	cSkip   string // why the C peer is unavailable
	goSkip  string // why the go-nfqueue peer is unavailable
	qgSkip  string // why the qguard peer is unavailable
	nextQ   uint16 // queue numbers are never reused within a run
	pinning string
	// genKind and sinkKind are the generator and sink asked for (empty:
	// the fast one, falling back).
	genKind, sinkKind string
}

// choices maps Config.Generator and Config.Sink to generator and sink kinds.
func choices(c *Config) (gen, sink string, err error) {
	switch c.Generator {
	case "":
	case "packet":
		gen = genPacket
	case "udp":
		gen = genUDP
	default:
		return "", "", fmt.Errorf("choose generator %q: %w (packet, udp)", c.Generator, ErrBadChoice)
	}
	switch c.Sink {
	case "":
	case "nft":
		sink = sinkNFT
	case "socket":
		sink = sinkSocket
	default:
		return "", "", fmt.Errorf("choose sink %q: %w (nft, socket)", c.Sink, ErrBadChoice)
	}
	return gen, sink, nil
}

// describe names the kind that ran and, after a fallback, why.
func describe(kind, why string) string {
	if why == "" {
		return kind
	}
	return kind + " (fallback: " + why + ")"
}

// Run measures every selected mode and returns the report. It needs root.
// ctx cancellation (Ctrl-C) stops the run and removes the topology.
func Run(ctx context.Context, cfg *Config) (*Report, error) {
	loadBefore := loadAvg()
	c := cfg.withDefaults()
	modes, err := SelectModes(&c)
	if err != nil {
		return nil, err
	}
	if err := checkCPUs(&c); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("run benchmark: %w", topo.ErrNotRoot)
	}
	// Generator, sink and reflector threads are locked goroutines that
	// each want a P: with GOMAXPROCS at the CPU count, one returning from a
	// blocking call could wait for a P held by another. (Every handler,
	// qguard's included, runs in its own process.)
	if want := c.SinkSockets + c.TCPConns + 8; runtime.GOMAXPROCS(0) < want {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(want))
	}
	e := &env{cfg: c, nextQ: 100}
	if e.genKind, e.sinkKind, err = choices(&c); err != nil {
		return nil, err
	}
	harnessNice.Store(int32(c.Nice))
	var extra []netip.Addr
	for i := range c.SrcAddrs {
		a4 := netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)})
		e.srcs = append(e.srcs, a4)
		extra = append(extra, a4)
		if !c.NoIPv6 {
			a6 := netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%x", 0x10+i))
			e.srcs = append(e.srcs, a6)
			extra = append(extra, a6)
		}
	}
	extra = append(extra, floodSrc)
	if c.Progress != nil {
		c.Progress(Progress{Run: 1, Runs: c.Runs, Of: len(modes), Mode: "setup", Phase: "topology, warm-up, peers"})
	}
	if e.t, err = topo.NewTopology(&topo.Options{Prefix: c.Prefix, ExtraClientAddrs: extra}); err != nil {
		return nil, fmt.Errorf("build topology: %w", err)
	}
	// The topology goes on return, on error and on cancellation: a
	// cancelled context tears it down under the running mode, which then
	// fails fast instead of waiting out its phase.
	done := make(chan struct{})
	defer func() {
		close(done)
		_ = e.t.Close()
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = e.t.Close()
		case <-done:
		}
	}()
	if e.tmp, err = os.MkdirTemp("", "qguard-bench-"); err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	defer os.RemoveAll(e.tmp)
	var sinkWhy, genWhy string
	if e.sink, sinkWhy, err = startSink(e.t.Server, e.t.ServerLink, c.SinkSockets, *c.SinkCPU, e.sinkKind); err != nil {
		return nil, err
	}
	defer e.sink.close()
	if e.gen, genWhy, err = newFloodGenerator(e.t, e.srcs, c.PortsPerAddr, e.t.ServerIP4, e.t.ServerIP6, e.genKind); err != nil {
		return nil, err
	}
	defer e.gen.close()
	if err := e.warmUp(ctx); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(modes, func(m Mode) bool { return m.kind == "c" }) {
		e.cPeer, e.cSkip = buildCPeer(ctx, c.CC, c.PeerSource, e.tmp)
	}
	e.pinning = fmt.Sprintf("generator CPU %s, sink CPU %s, handler CPU %s; nice %d",
		cpuName(*c.GenCPU), cpuName(*c.SinkCPU), cpuName(c.HandlerCPUs[0]), c.Nice)
	rep := &Report{
		LoadBefore: loadBefore, Started: time.Now().UTC(), CPUs: len(usableCPUsPortable()), Pinning: e.pinning,
		Duration: c.Duration.String(), Runs: c.Runs,
		Flows:     fmt.Sprintf("%d UDP flows (%d sources x %d ports), IPv4%s", e.gen.flowCount(), len(e.srcs), c.PortsPerAddr, map[bool]string{false: "+IPv6", true: " only"}[c.NoIPv6]),
		Generator: describe(e.gen.kind, genWhy), Sink: describe(e.sink.kind, sinkWhy),
	}
	var un unix.Utsname
	if unix.Uname(&un) == nil {
		rep.Host = unix.ByteSliceToString(un.Nodename[:])
		rep.Kernel = unix.ByteSliceToString(un.Release[:])
	}
	rep.Results = make([]Result, len(modes))
	for i, m := range modes {
		rep.Results[i] = Result{Mode: m.Name, Group: m.Group, Traffic: m.Traffic, Queues: m.Queues, About: m.About}
	}
	// Runs are interleaved (every mode once, then again) so slow drift of
	// the machine spreads over all modes instead of biasing one.
	for run := range c.Runs {
		for i, m := range modes {
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("run benchmark: %w", err)
			}
			r := &rep.Results[i]
			if r.Skipped != "" || r.Error != "" {
				continue
			}
			progress := func(phase string) {
				if c.Progress != nil {
					c.Progress(Progress{Run: run + 1, Runs: c.Runs, Index: i + 1, Of: len(modes), Mode: m.Name, Phase: phase})
				}
			}
			s, pin, skip, err := e.runMode(ctx, m, progress)
			switch {
			case ctx.Err() != nil:
				return rep, fmt.Errorf("run benchmark: %w", ctx.Err())
			case skip != "":
				r.Skipped = skip
			case err != nil:
				r.Error = err.Error()
			default:
				r.Pinning = pin
				r.Samples = append(r.Samples, s)
			}
		}
	}
	rep.LoadAfter = loadAvg()
	rep.Recompute()
	return rep, nil
}

func cpuName(c int) string {
	if c < 0 {
		return "any"
	}
	return fmt.Sprint(c)
}

// handlerCPU is the CPU for the i-th queue thread of a mode.
func (e *env) handlerCPU(i int) int {
	h := e.cfg.HandlerCPUs
	return h[i%len(h)]
}

// start launches the mode's handler, bound and ready, or says why it cannot run.
func (e *env) start(ctx context.Context, m Mode, num uint16) (h handler, skip string, err error) {
	switch m.kind {
	case "kernel", "flood-nftset":
		return nil, "", nil
	case "flood-xdp":
		if err := xdpProbe(); err != nil {
			return nil, fmt.Sprintf("XDP unusable here: %v", err), nil
		}
		return nil, "", nil
	case "c":
		if e.cSkip != "" {
			return nil, e.cSkip, nil
		}
		h, err = startProc(ctx, e.t.Firewall, e.handlerCPU(0), nil,
			e.cPeer, fmt.Sprint(num), fmt.Sprint(m.batch), fmt.Sprint(e.cfg.QueueMaxLen), fmt.Sprint(e.cfg.RcvBuf))
		return h, "", err
	case "gonfq":
		if len(e.cfg.GoPeer) == 0 && e.goSkip == "" {
			path, skip := buildGoPeer(ctx, e.tmp)
			if skip != "" {
				e.goSkip = skip
			} else {
				e.cfg.GoPeer = []string{path}
			}
		}
		if e.goSkip != "" {
			return nil, e.goSkip, nil
		}
		argv := append(slices.Clone(e.cfg.GoPeer), "-queue", fmt.Sprint(num), "-batch", fmt.Sprint(m.batch))
		h, err = startProc(ctx, e.t.Firewall, e.handlerCPU(0), e.cfg.GoPeerEnv, argv...)
		return h, "", err
	}
	return startQGuard(ctx, e, m, num)
}

// runMode measures one mode once.
func (e *env) runMode(ctx context.Context, m Mode, progress func(string)) (s Sample, pin, skip string, err error) {
	progress("starting")
	num := e.nextQ
	e.nextQ += uint16(max(m.Queues, 1))
	h, skip, err := e.start(ctx, m, num)
	if skip != "" || err != nil {
		return s, "", skip, err
	}
	if h != nil {
		defer func() {
			if cerr := h.close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	pin = e.pinningFor(m)
	if m.Traffic == Flood {
		s, err = e.flood(ctx, m, num, h, progress)
		return s, pin, "", err
	}
	proto := "udp"
	if m.Traffic == TCP {
		proto = "tcp"
	}
	if m.Queues > 0 && !m.selfSteer {
		if err := steer(e.t.Firewall, proto, num, m.Queues); err != nil {
			return s, pin, "", err
		}
		defer func() {
			if uerr := unsteer(e.t.Firewall); uerr != nil && err == nil {
				err = uerr
			}
		}()
	}
	progress("throughput")
	if s, err = e.throughput(ctx, m, num, h); err != nil {
		return s, pin, "", err
	}
	if m.Traffic != TCP {
		progress("latency")
		// Let the queue drain before timing single packets.
		time.Sleep(100 * time.Millisecond)
		rtts, lost, err := pingUDP(e.t.Client, e.srcs[0], e.t.ServerIP4, e.cfg.LatencySamples, e.cfg.LatencyInterval, *e.cfg.GenCPU)
		if err != nil {
			return s, pin, "", err
		}
		slices.Sort(rtts)
		s.RTTSamples, s.RTTLost = len(rtts), lost
		s.RTTMedian, s.RTTP99 = int64(percentile(rtts, 0.5)), int64(percentile(rtts, 0.99))
	}
	if !e.cfg.NoDrain && h != nil && drainable(m) {
		progress("drain")
		if s.DrainPackets, s.DrainSeconds, err = e.drain(ctx, m, num, h); err != nil {
			return s, pin, "", err
		}
	}
	return s, pin, "", nil
}

func (e *env) pinningFor(m Mode) string {
	if m.Queues == 0 && m.Group != GroupFlood {
		return fmt.Sprintf("gen %s, sink %s", cpuName(*e.cfg.GenCPU), cpuName(*e.cfg.SinkCPU))
	}
	var hs []string
	for i := range max(m.Queues, 1) {
		hs = append(hs, cpuName(e.handlerCPU(i)))
	}
	return fmt.Sprintf("gen %s, sink %s, handler %s", cpuName(*e.cfg.GenCPU), cpuName(*e.cfg.SinkCPU), strings.Join(hs, "+"))
}

// snapshot is the counters at one instant.
type snapshot struct {
	at                        time.Time
	sent, pkts, bytes, tcp    uint64
	sinkDrops                 uint64
	dropped, udropped, queued uint64
	cpu, user, sys            time.Duration
}

func (e *env) snap(m Mode, num uint16, h handler, g *generator) (snapshot, error) {
	s := snapshot{sent: g.sent.n.Load()}
	s.pkts, s.bytes, s.tcp = e.sink.counts()
	s.at = time.Now()
	var err error
	if h != nil {
		if s.cpu, err = h.cpu(); err != nil {
			return s, err
		}
		if s.user, s.sys, err = h.userSys(); err != nil {
			return s, err
		}
	}
	if m.Queues > 0 {
		st, err := readNFQStats(e.t.Firewall)
		if err != nil {
			return s, err
		}
		s.dropped, s.udropped, s.queued = nfqTotals(st, num, m.Queues)
	}
	s.sinkDrops, _ = udpRcvbufErrors(e.t.Server)
	return s, nil
}

func (e *env) throughput(ctx context.Context, m Mode, num uint16, h handler) (Sample, error) {
	var s Sample
	g := e.gen
	switch m.Traffic {
	case TCP:
		g = &generator{}
		defer g.close()
		var srcs []netip.Addr
		for i := range e.cfg.TCPConns {
			srcs = append(srcs, e.srcs[i%len(e.srcs)])
		}
		if err := g.runTCP(e.t.Client, srcs, e.t.ServerIP4, e.t.ServerIP6, *e.cfg.GenCPU); err != nil {
			return s, err
		}
	case UDPMTU:
		g.runUDP(*e.cfg.GenCPU, 1500)
	default:
		g.runUDP(*e.cfg.GenCPU, 64)
	}
	defer g.halt()
	if !sleepCtx(ctx, e.cfg.Warmup) {
		return s, ctx.Err()
	}
	a, err := e.snap(m, num, h, g)
	if err != nil {
		return s, err
	}
	if !sleepCtx(ctx, e.cfg.Duration) {
		return s, ctx.Err()
	}
	b, err := e.snap(m, num, h, g)
	if err != nil {
		return s, err
	}
	s = Sample{
		Seconds: b.at.Sub(a.at).Seconds(), Sent: b.sent - a.sent, Delivered: b.pkts - a.pkts,
		DeliveredBytes: b.bytes - a.bytes, SinkDrops: b.sinkDrops - a.sinkDrops,
		Queued: b.queued - a.queued, QueueDropped: b.dropped - a.dropped, UserDropped: b.udropped - a.udropped,
		HandlerCPU: int64(b.cpu - a.cpu), HandlerUser: int64(b.user - a.user), HandlerSys: int64(b.sys - a.sys),
	}
	if m.Traffic == TCP {
		s.Delivered, s.DeliveredBytes = 0, b.tcp-a.tcp
	}
	if s.Delivered == 0 && s.DeliveredBytes == 0 {
		return s, fmt.Errorf("measure %s: nothing delivered in %.1fs (sent %d)", m.Name, s.Seconds, s.Sent)
	}
	return s, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// readNetFile reads a /proc/net file as seen from inside ns: the
// thread-self view follows the calling thread's namespace, which Do sets.
func readNetFile(ns topo.NS, name string) (string, error) {
	var b []byte
	err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/" + name)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read %s in %s: %w", name, ns.Name, err)
	}
	return string(b), nil
}

func readNFQStats(fw topo.NS) ([]NFQStat, error) {
	s, err := readNetFile(fw, "netfilter/nfnetlink_queue")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseNFQStats(s)
}

// udpRcvbufErrors sums UDP and UDP6 receive-buffer overruns in ns.
func udpRcvbufErrors(ns topo.NS) (uint64, error) {
	var total uint64
	snmp, err := readNetFile(ns, "snmp")
	if err != nil {
		return 0, err
	}
	total += snmpField(snmp, "Udp:", "RcvbufErrors")
	if s6, err := readNetFile(ns, "snmp6"); err == nil {
		for _, line := range strings.Split(s6, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
				var v uint64
				fmt.Sscan(f[1], &v)
				total += v
			}
		}
	}
	return total, nil
}

// snmpField finds a counter in /proc/net/snmp's header/value line pairs.
func snmpField(s, prefix, name string) uint64 {
	lines := strings.Split(s, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], prefix) || !strings.HasPrefix(lines[i+1], prefix) {
			continue
		}
		h, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range h {
			if h[j] == name && j < len(v) {
				var n uint64
				fmt.Sscan(v[j], &n)
				return n
			}
		}
		return 0
	}
	return 0
}

// warmUp floods until the sink sees what is sent: IPv6 neighbour discovery
// through a flooded link takes a while (packets wait in, and overflow, the
// neighbour's queue meanwhile), and the first mode must not pay for it. It
// also proves that the topology forwards at all.
func (e *env) warmUp(ctx context.Context) error {
	e.gen.runUDP(*e.cfg.GenCPU, 64)
	defer e.gen.halt()
	var total uint64
	for range 15 {
		s0 := e.gen.sent.n.Load()
		d0, _, _ := e.sink.counts()
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
		sent := e.gen.sent.n.Load() - s0
		d1, _, _ := e.sink.counts()
		total += d1 - d0
		if sent > 0 && float64(d1-d0) >= 0.97*float64(sent) {
			return nil
		}
	}
	if total == 0 {
		return fmt.Errorf("warm up: no packet reached the sink (sent %d)", e.gen.sent.n.Load())
	}
	return nil // lossy even when settled: the figures will show it
}

// checkCPUs rejects pinning to CPUs this process may not run on.
func checkCPUs(c *Config) error {
	ok := usableCPUsPortable()
	check := func(what string, cpu int) error {
		if cpu == -1 || slices.Contains(ok, cpu) {
			return nil
		}
		return fmt.Errorf("pin %s to CPU %d: %w (usable: %v, or -1 for unpinned)", what, cpu, ErrBadCPU, ok)
	}
	if err := check("generator", *c.GenCPU); err != nil {
		return err
	}
	if err := check("sink", *c.SinkCPU); err != nil {
		return err
	}
	for _, h := range c.HandlerCPUs {
		if err := check("handler", h); err != nil {
			return err
		}
	}
	return nil
}
