package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/queue"
)

// handler is a running queue listener.
type handler interface {
	// cpu is the handler's CPU time so far.
	cpu() (time.Duration, error)
	// userSys splits it (tick resolution) into user and system time.
	userSys() (user, sys time.Duration, err error)
	close() error
}

// env is what every mode of one Run shares.
type env struct {
	cfg   Config
	t     *topo.Topology
	srv   *servers
	gen   *generator
	steer *steering
	srcs  []netip.Addr // client flow sources, both families
	tmp   string
	nice  int
	nextQ uint16 // queue numbers are never reused within a run
	// Handler programs, built or found once per run; a non-empty skip
	// says why one is unavailable.
	cPeer, cSkip      string
	goSkip, qgSkip    string
	daemonSkip        string
	pinning           string
	genKind, sinkKind string // asked for (empty: the fast one, falling back)
	// costSkip says why the cost-at-load phase cannot run; genFloor is
	// the generator thread's own CPU per packet at each offered rate.
	costSkip string
	genFloor map[int]float64
	softirqd []int // pids of the ksoftirqd threads
}

// modeRun is one mode measured once: its first queue and its handler.
type modeRun struct {
	m        *Mode
	q        uint16
	h        handler // nil without one
	progress func(phase string)
}

// thread is where the harness's threads run: pinned to cpu (-1: anywhere)
// at the run's nice value.
func (e *env) thread(cpu int) thread { return thread{cpu: cpu, nice: e.nice} }

func (e *env) genThread() thread { return e.thread(*e.cfg.GenCPU) }

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
	if want := c.SinkSockets + c.TCPConns + 2*c.ConnWorkers + 8; runtime.GOMAXPROCS(0) < want {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(want))
	}
	e := &env{cfg: c, nextQ: 100, nice: c.Nice}
	if e.genKind, e.sinkKind, err = choices(&c); err != nil {
		return nil, err
	}
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
	extra = append(extra, floodSource())
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
	rep, err := e.setup(ctx, modes, loadBefore)
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled during the setup: the topology was torn down under
			// it, and whatever step failed for that is not the cause.
			return nil, fmt.Errorf("run benchmark: %w (setup: %v)", ctx.Err(), err)
		}
		return nil, err
	}
	defer e.srv.close()
	defer e.gen.close()
	defer e.steer.close()
	rep.Results = make([]Result, len(modes))
	for i, m := range modes {
		rep.Results[i] = Result{Mode: m.Name, Group: m.Group, Family: m.Family, Traffic: m.Traffic, Queues: m.Queues, About: m.About}
	}
	// Runs are interleaved (every mode once, then again) so slow drift of
	// the machine spreads over all modes instead of biasing one.
	for run := range c.Runs {
		for i := range modes {
			m := &modes[i]
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
			s, err := e.runMode(ctx, m, progress)
			why, skip := skipped(err)
			switch {
			case ctx.Err() != nil:
				return rep, fmt.Errorf("run benchmark: %w", ctx.Err())
			case skip:
				r.Skipped = why
			case err != nil:
				r.Error = err.Error()
			default:
				r.Pinning = e.pinningFor(m)
				r.Samples = append(r.Samples, s)
			}
		}
	}
	rep.LoadAfter = loadAvg()
	rep.Recompute()
	return rep, nil
}

// setup starts the servers and the generator, warms the topology up,
// builds the C peer when a mode needs it and calibrates the cost phase.
// On error it leaves nothing running.
func (e *env) setup(ctx context.Context, modes []Mode, loadBefore float64) (rep *Report, err error) {
	c := &e.cfg
	var sinkWhy, genWhy string
	if e.srv, sinkWhy, err = startServers(e.t.Server, e.t.ServerLink, c.SinkSockets, e.thread(*c.SinkCPU), e.sinkKind); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.srv.close()
		}
	}()
	if e.gen, genWhy, err = newFloodGenerator(e.t, e.srcs, c.PortsPerAddr, e.t.ServerIP4, e.t.ServerIP6, e.genKind); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.gen.close()
		}
	}()
	if e.steer, err = openSteering(e.t.Firewall); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.steer.close()
		}
	}()
	if err := e.warmUp(ctx); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(modes, func(m Mode) bool { return m.Family == FamilyC }) {
		e.cPeer, e.cSkip = buildCPeer(ctx, c.CC, c.PeerSource, e.tmp)
	}
	if !c.NoCost && slices.ContainsFunc(modes, func(m Mode) bool { return m.cost }) {
		if err := e.calibrate(ctx); err != nil {
			return nil, err
		}
	}
	e.pinning = fmt.Sprintf("generator CPU %s, sink CPU %s, handler CPU %s; nice %d",
		cpuName(*c.GenCPU), cpuName(*c.SinkCPU), cpuName(c.HandlerCPUs[0]), c.Nice)
	rep = &Report{
		LoadBefore: loadBefore, Started: time.Now().UTC(), CPUs: len(usableCPUsPortable()), Pinning: e.pinning,
		Duration: c.Duration.String(), Runs: c.Runs,
		Flows:     fmt.Sprintf("%d UDP flows (%d sources x %d ports), IPv4%s", e.gen.flowCount(), len(e.srcs), c.PortsPerAddr, map[bool]string{false: "+IPv6", true: " only"}[c.NoIPv6]),
		Generator: describe(e.gen.kind, genWhy), Sink: describe(e.srv.sink.kind(), sinkWhy),
		CostSkipped: e.costSkip,
	}
	for _, r := range c.LoadRates {
		if f, ok := e.genFloor[r]; ok {
			rep.GenFloor = append(rep.GenFloor, GenFloor{Rate: r, NSPerPacket: f})
		}
	}
	var un unix.Utsname
	if unix.Uname(&un) == nil {
		rep.Host = unix.ByteSliceToString(un.Nodename[:])
		rep.Kernel = unix.ByteSliceToString(un.Release[:])
	}
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

// runMode measures one mode once: start its handler, steer its traffic,
// measure, and undo both.
func (e *env) runMode(ctx context.Context, m *Mode, progress func(string)) (s Sample, err error) {
	progress("starting")
	r := &modeRun{m: m, q: e.nextQ, progress: progress}
	e.nextQ += uint16(max(m.Queues, 1))
	// Undone in reverse: the steering goes after the handler has let go
	// of its queues (removing a base chain drops what is still queued).
	defer func() {
		if r.h != nil {
			if cerr := r.h.close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		if serr := e.steer.remove(); serr != nil && err == nil {
			err = serr
		}
	}()
	if m.start != nil {
		if r.h, err = m.start(ctx, e, m, r.q); err != nil || r.h == nil {
			r.h = nil // a failed start may return a typed nil
		}
		if err != nil {
			return s, err
		}
	}
	if m.steer {
		proto := uint8(unix.IPPROTO_UDP)
		if m.Traffic.isTCP() {
			proto = unix.IPPROTO_TCP
		}
		if err := e.steer.add(proto, r.q, max(m.Queues, 1)); err != nil {
			return s, err
		}
	}
	measure := m.measure
	if measure == nil {
		measure = measureForward
	}
	return measure(ctx, e, r)
}

// measureForward is the usual measure: throughput under the flood (or the
// TCP streams), the echo's round trip, the drain phase and the cost at
// fixed offered loads, as the mode has them.
func measureForward(ctx context.Context, e *env, r *modeRun) (s Sample, err error) {
	m := r.m
	r.progress("throughput")
	if s, err = e.throughput(ctx, r); err != nil {
		return s, err
	}
	if m.Traffic != TCP {
		r.progress("latency")
		if err := e.latency(ctx, &s); err != nil {
			return s, err
		}
	}
	if !e.cfg.NoDrain && r.h != nil && m.drain {
		r.progress("drain")
		if err = e.drain(ctx, r, &s); err != nil {
			return s, err
		}
	}
	if m.cost && e.costSkip == "" && !e.cfg.NoCost {
		r.progress("cost at load")
		if s.Loads, err = e.costAtLoad(ctx, r); err != nil {
			return s, err
		}
	}
	return s, nil
}

// latency times single echoes through the firewall both ways.
func (e *env) latency(ctx context.Context, s *Sample) error {
	// Let the queue drain before timing single packets.
	if !sleepCtx(ctx, 100*time.Millisecond) {
		return ctx.Err()
	}
	rtts, lost, err := pingUDP(e.t.Client, e.srcs[0], e.t.ServerIP4, e.cfg.LatencySamples, e.cfg.LatencyInterval, e.genThread())
	if err != nil {
		return err
	}
	slices.Sort(rtts)
	s.RTTSamples, s.RTTLost = len(rtts), lost
	s.RTTMedian, s.RTTP99 = int64(percentile(rtts, 0.5)), int64(percentile(rtts, 0.99))
	return nil
}

func (e *env) pinningFor(m *Mode) string {
	if m.start == nil && m.Group != GroupFlood {
		return fmt.Sprintf("gen %s, sink %s", cpuName(*e.cfg.GenCPU), cpuName(*e.cfg.SinkCPU))
	}
	var hs []string
	for i := range max(m.Queues, 1) {
		hs = append(hs, cpuName(e.handlerCPU(i)))
	}
	return fmt.Sprintf("gen %s, sink %s, handler %s", cpuName(*e.cfg.GenCPU), cpuName(*e.cfg.SinkCPU), strings.Join(hs, "+"))
}

func (e *env) throughput(ctx context.Context, r *modeRun) (Sample, error) {
	g := e.gen
	switch r.m.Traffic {
	case UDPMTU:
		g.runUDP(e.genThread(), 1500)
	default:
		g.runUDP(e.genThread(), 64)
	}
	defer g.halt()
	s, _, _, err := e.window(ctx, r, g, nil, nil)
	if err != nil {
		return s, err
	}
	if s.Delivered == 0 && s.DeliveredBytes == 0 {
		return s, fmt.Errorf("measure %s: nothing delivered in %.1fs (sent %d)", r.m.Name, s.Seconds, s.Sent)
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

func readNFQStats(fw topo.NS) ([]queue.KernelStats, error) {
	s, err := readNetFile(fw, "netfilter/nfnetlink_queue")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return queue.ParseProcQueues([]byte(s))
}

// udpRcvbufErrors sums UDP and UDP6 receive-buffer overruns in ns.
func udpRcvbufErrors(ns topo.NS) (uint64, error) {
	var total uint64
	snmp, err := readNetFile(ns, "snmp")
	if err != nil {
		return 0, err
	}
	total += topo.SNMPField(snmp, "Udp:", "RcvbufErrors")
	if s6, err := readNetFile(ns, "snmp6"); err == nil {
		for _, line := range strings.Split(s6, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
				v, _ := strconv.ParseUint(f[1], 10, 64) // a counter that does not parse counts 0
				total += v
			}
		}
	}
	return total, nil
}

// warmUp floods until the sink sees what is sent: IPv6 neighbour discovery
// through a flooded link takes a while (packets wait in, and overflow, the
// neighbour's queue meanwhile), and the first mode must not pay for it. It
// also proves that the topology forwards at all.
func (e *env) warmUp(ctx context.Context) error {
	e.gen.runUDP(e.genThread(), 64)
	defer e.gen.halt()
	var total uint64
	for range 15 {
		s0 := e.gen.sent.n.Load()
		d0, _ := e.srv.counts()
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
		sent := e.gen.sent.n.Load() - s0
		d1, _ := e.srv.counts()
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
