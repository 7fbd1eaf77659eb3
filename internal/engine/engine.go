package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
	"github.com/qguard/qguard/xdp"
)

// Errors wrapped by New, Start, Reload and Close.
var (
	// ErrConfig: the configuration (or an Options override) is invalid.
	ErrConfig = errors.New("invalid configuration")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("engine already started")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("engine closed")
	// ErrPrivilege: the kernel refused for want of a capability.
	ErrPrivilege = errors.New("missing capability CAP_NET_ADMIN in this network namespace")
)

// QueueRange overrides the configuration's queue numbers.
type QueueRange struct{ Num, Count uint16 }

// traceFlows is the flow table capacity of the Decide/Trace pipeline.
const traceFlows = 4096

// Options adjust New; a nil *Options means defaults.
type Options struct {
	// Logger receives start-up, reload, shutdown and per-decision lines
	// (default slog.Default()).
	Logger *slog.Logger
	// Queue overrides queue.num and queue.count (and the rules' queue
	// numbers with them).
	Queue *QueueRange
	// NoRules installs no nftables rules whatever rules.install says:
	// someone else steers traffic to the queues.
	NoRules bool
	// NoXDP attaches no XDP program whatever xdp.interfaces says.
	NoXDP bool
	// Offline opens no queue, installs no rule and attaches no program: the
	// engine only decides packets given to Handle, Decide or Trace. The
	// rule-test runner and the benchmarks use it.
	Offline bool
	// Stages are user stages added to every pipeline (verdict.Pipeline.Use).
	Stages []verdict.Stage
	// BlockQueue bounds the channel of pending source blocks (default 1024).
	BlockQueue int
	// NetNS, when non-zero, is an open network namespace descriptor the
	// rules are installed in (see rules.Config.NetNS); queues and XDP use
	// the namespace of the thread calling New. The namespace the process
	// works in counts as none: entering it would need CAP_SYS_ADMIN.
	NetNS int
}

// Engine glues the queue engine, the verdict pipelines, the nftables rules
// and the XDP filter together. See the package documentation for its life
// cycle.
type Engine struct {
	log   *slog.Logger
	opts  Options
	set   *settings
	cfg   *config.File
	q     *queue.Queues
	rules *rules.Manager
	claim *rules.Claim                // this daemon owns the table (guard.go)
	guard atomic.Pointer[rules.Guard] // nil before Start and without rules
	xdp   *xdp.Filter
	qs    []*queueState
	gen   atomic.Pointer[policyState]
	reg   ruleRegistry

	// Fixed after New, read by the packet path without locks: the first
	// queue number, qguard's marks, and whether rules are installed (so
	// NF_REPEAT with the reject mark works). Whether flow marks work
	// (rules.offload) may change on reload and lives in policyState.
	netns       *os.File // the namespace the rules live in, when New opened it
	qbase       uint16
	marks       rules.Marks
	rejectMarks bool

	traceMu   sync.Mutex
	tracePipe *verdict.Pipeline
	traceGen  *policyState

	links                  *links       // links_linux.go; nil offline
	nflog                  *nflog       // nflog_linux.go; nil without a kernel policy
	rec                    *recorder    // record.go; nil without record.output
	names                  *names.Table // names.go
	nameStop               chan struct{}
	nameDone               chan struct{}
	nameKernel, nameErrors atomic.Uint64
	ct                     *conntrackWatch // conntrack_linux.go; nil without record.flows
	bypass                 bypassMeter     // bypass.go
	bypassStop, bypassDone chan struct{}

	blockCh                               chan blockReq
	blockQueued, blockDropped, blockError atomic.Uint64
	blockDone, blockStop                  chan struct{}

	started                 time.Time
	reloads, reloadFailures atomic.Uint64
	loadMu                  sync.Mutex // orders reloads; held while loading, which Close does not wait for
	reloadMu                sync.Mutex // serializes applying a reload and Close
	lastReload              time.Time
	lastReloadErr           string
	runDone                 chan struct{}
	runErr                  error
	cancel                  context.CancelFunc
	startOnce               atomic.Bool
	closed                  bool
	closeErr                error
}

// New validates cfg, probes the kernel, binds every queue (all or none),
// compiles the policy, builds one pipeline per queue, installs the nftables
// rules (unless rules.install is false or o.NoRules) and attaches XDP when
// interfaces are configured (falling back to the nftables block sets when
// XDP is unsupported). On any failure it undoes what it did, in reverse
// order, and returns an error naming the step. Packets are not read until
// Start; the kernel holds them in the queue meanwhile.
func New(cfg *config.File, o *Options) (*Engine, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if cfg == nil {
		cfg = config.Default()
	}
	set, err := checkedSettings(cfg, &opts)
	if err != nil {
		return nil, err
	}
	e, err := newEngine(set, &opts)
	if err != nil {
		return nil, err
	}
	e.cfg = cfg
	return e, nil
}

// newEngine is New after the configuration was turned into settings. Each
// step that opens a kernel object pushes its own undo (open.go); a failure
// runs them, last first, so exactly what was done is undone.
func newEngine(set *settings, o *Options) (_ *Engine, err error) {
	e := &Engine{started: time.Now(), runDone: make(chan struct{}), opts: *o, set: set,
		qbase: set.queue.Num, marks: set.marks}
	e.log = e.opts.Logger
	if e.log == nil {
		e.log = slog.Default()
	}
	var undo undoStack
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	if !e.opts.Offline {
		if err := e.openLinks(&undo); err != nil {
			return nil, err
		}
	}
	if err := e.openNames(set); err != nil {
		return nil, err
	}
	compiled, err := e.compile(set)
	if err != nil {
		return nil, err
	}
	e.names.SetFilter(compiled.NameFilter())
	if set.record.Output != "" && !e.opts.Offline {
		if err := e.openRecord(&undo); err != nil {
			return nil, err
		}
	}
	e.buildPipelines(compiled)
	if e.opts.Offline {
		return e, nil
	}
	var caps rules.Capabilities
	if set.installRules {
		if caps, err = e.probeKernel(&undo); err != nil {
			return nil, err
		}
	}
	if err := e.openQueues(&undo); err != nil {
		return nil, err
	}
	if set.installRules {
		if err := e.installRules(&undo, caps); err != nil {
			return nil, err
		}
	}
	if set.xdp != nil {
		if err := e.attachXDP(&undo); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// buildPipelines makes the first policy generation, one pipeline per
// queue, the Decide/Trace pipeline and the block channel.
func (e *Engine) buildPipelines(compiled *verdict.Compiled) {
	set := e.set
	count := int(set.queue.Count)
	e.reg.queues = count
	g := e.newGeneration(set.policy, compiled)
	e.gen.Store(g)
	e.qs = make([]*queueState, count)
	for i := range e.qs {
		qs := &queueState{num: set.queue.Num + uint16(i), gen: g}
		qs.pipe = e.newPipeline(compiled, qs.clock)
		e.qs[i] = qs
	}
	// Decide and Trace serve tools, not traffic: a small flow table will do.
	to := verdict.Options{}
	if set.pipeline != nil {
		to = *set.pipeline
	}
	fc := verdict.FlowConfig{}
	if to.Flows != nil {
		fc = *to.Flows
	}
	fc.Capacity, fc.HelloBuffers = traceFlows, 64
	to.Flows = &fc
	e.tracePipe, e.traceGen = verdict.NewPipeline(compiled, &to), g
	for _, s := range e.opts.Stages {
		e.tracePipe.Use(s)
	}
	bq := e.opts.BlockQueue
	if bq <= 0 {
		bq = 1024
	}
	e.blockCh = make(chan blockReq, bq)
	e.bypass.failOpen = set.queue.Flags&queue.FlagFailOpen != 0
}

// newPipeline is a queue's pipeline on the given clock (unless the
// settings bring their own).
func (e *Engine) newPipeline(c *verdict.Compiled, now func() time.Time) *verdict.Pipeline {
	var o verdict.Options
	if e.set.pipeline != nil {
		o = *e.set.pipeline
	}
	if o.Now == nil {
		o.Now = now
	}
	p := verdict.NewPipeline(c, &o)
	for _, s := range e.opts.Stages {
		p.Use(s)
	}
	return p
}

// Start begins reading packets (one goroutine per queue, inside the queue
// engine) and the goroutine that installs source blocks. It returns at once;
// Done is closed when the queues stop, Err says why.
func (e *Engine) Start(ctx context.Context) error {
	if !e.startOnce.CompareAndSwap(false, true) {
		return ErrStarted
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.blockDone, e.blockStop = make(chan struct{}), make(chan struct{})
	go e.blockLoop()
	if err := e.startGuard(); err != nil {
		return err
	}
	if e.rules != nil && e.names.Updates() != nil {
		e.nameStop, e.nameDone = make(chan struct{}), make(chan struct{})
		go e.nameLoop(e.nameStop, e.nameDone)
	}
	if e.rules != nil && e.q != nil {
		e.bypassStop, e.bypassDone = make(chan struct{}), make(chan struct{})
		go e.bypassLoop(e.bypassStop, e.bypassDone)
	}
	if e.q == nil {
		return nil
	}
	if e.links != nil {
		e.links.start()
	}
	if e.nflog != nil {
		e.nflog.start()
	}
	if e.rec != nil {
		e.rec.started.Store(true)
		go e.rec.run()
		if e.ct != nil {
			e.ct.start(e.rec.flows)
		}
	}
	ctx, e.cancel = context.WithCancel(ctx)
	go func() {
		defer close(e.runDone)
		e.runErr = e.q.Run(ctx, e.Handle)
	}()
	return nil
}

// Started says whether Start was called.
func (e *Engine) Started() bool { return e.startOnce.Load() }

// Online says whether the engine has kernel queues (it was not made with
// Options.Offline).
func (e *Engine) Online() bool { return e.q != nil }

// GuardStatus is the table guard's last look at the table, false before
// Start or without rules. Safe from any goroutine.
func (e *Engine) GuardStatus() (rules.GuardStatus, bool) {
	g := e.guard.Load()
	if g == nil {
		return rules.GuardStatus{}, false
	}
	return g.Status(), true
}

// Done is closed when the queues stopped: after Close, or when reading
// failed (Err tells). An offline engine's Done closes on Close.
func (e *Engine) Done() <-chan struct{} { return e.runDone }

// Err is why the queues stopped, once Done is closed; nil after Close.
func (e *Engine) Err() error {
	select {
	case <-e.runDone:
		if errors.Is(e.runErr, context.Canceled) || errors.Is(e.runErr, queue.ErrClosed) {
			return nil
		}
		return e.runErr
	default:
		return nil
	}
}

// Close shuts down without losing a packet it could save. It quiesces the
// queues first: the kernel queues nothing more to them (a queue of length 0:
// new packets are accepted unqueued with queue.fail_open, dropped without)
// and every packet already queued gets its verdict. Only then does it remove
// the nftables table: deleting its base chains unregisters netfilter hooks,
// which makes the kernel drop every packet queued in the namespace, and the
// quiesced queues hold none. The queues are unbound before the table goes:
// a packet the kernel fail-opens at a quiesced queue is re-injected, and a
// re-inject that meets the hook's removal was seen dropped (1 in 40 stops
// under load); unbound, the rule's bypass accepts without a re-inject
// (without rules.bypass, packets of that moment are dropped). The block
// goroutine stops before the table goes; XDP is detached last. It is idempotent and safe to call after a failed Start.
func (e *Engine) Close() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.closed {
		return e.closeErr
	}
	e.closed = true
	var errs []error
	// The guard goes first: what follows changes the table on purpose.
	e.guard.Load().Stop()
	if e.bypassStop != nil {
		close(e.bypassStop)
		<-e.bypassDone
	}
	t0 := time.Now()
	if e.q != nil {
		if err := e.q.Quiesce(); err != nil {
			errs = append(errs, fmt.Errorf("quiesce queues: %w", err))
		}
		e.log.Debug("queues quiesced: every queued packet has its verdict", "took", time.Since(t0))
	}
	// Quiesced queues call no handler: no new block requests.
	if e.blockDone != nil {
		// blockCh stays open: a late Handle (offline users) must not panic.
		close(e.blockStop)
		<-e.blockDone
	}
	if e.nameStop != nil {
		close(e.nameStop)
		<-e.nameDone
	}
	if e.q != nil {
		if err := e.q.Close(); err != nil && !errors.Is(err, queue.ErrClosed) {
			errs = append(errs, fmt.Errorf("close queues: %w", err))
		}
		e.log.Debug("queues unbound", "took", time.Since(t0))
		if e.cancel != nil {
			<-e.runDone
			e.cancel()
		}
	}
	if e.rules != nil {
		if err := e.rules.Remove(); err != nil {
			errs = append(errs, fmt.Errorf("remove nftables table %q: %w", e.set.rules.Table, err))
		}
	}
	if e.cancel == nil {
		select {
		case <-e.runDone:
		default:
			close(e.runDone)
		}
	}
	if e.xdp != nil {
		if err := e.xdp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach XDP: %w", err))
		}
	}
	e.links.close()
	e.nflog.close()
	e.ct.close()
	e.rec.close()
	e.claim.Release()
	if e.netns != nil {
		e.netns.Close()
	}
	e.closeErr = errors.Join(errs...)
	return e.closeErr
}

// Config returns the configuration in force (after the last good reload).
func (e *Engine) Config() *config.File {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.cfg
}

// Decide runs one packet through the policy as queue q's pipeline would,
// without a kernel queue, and counts its rule hit (on queue slot 0). It takes the trace
// lock: for tests and tools, not for the packet path.
func (e *Engine) Decide(raw []byte, m *verdict.Meta, d *verdict.Decision) {
	e.traceMu.Lock()
	defer e.traceMu.Unlock()
	e.syncTrace()
	e.tracePipe.Decide(raw, m, d)
	e.traceGen.hit(d, 0)
}

// Trace explains which rule decides raw and why, on a pipeline of its own
// that follows reloads (it does not disturb the queues' flow tables).
func (e *Engine) Trace(raw []byte, m *verdict.Meta) verdict.Trace {
	e.traceMu.Lock()
	defer e.traceMu.Unlock()
	e.syncTrace()
	return e.tracePipe.Trace(raw, m)
}

func (e *Engine) syncTrace() {
	if g := e.gen.Load(); g != e.traceGen {
		e.tracePipe.Swap(g.compiled)
		e.traceGen = g
	}
}

// Policy returns the policy in force.
func (e *Engine) Policy() *verdict.Policy { return e.gen.Load().policy }

// Queues returns the queue numbers the engine serves.
func (e *Engine) Queues() (num, count uint16) { return e.qbase, uint16(len(e.qs)) }

// Marks returns qguard's part of the packet mark space (rules.marks).
func (e *Engine) Marks() rules.Marks { return e.marks }

// RulesInstalled says whether the engine installed nftables rules.
func (e *Engine) RulesInstalled() bool { return e.rules != nil }

// RulesConfig returns the configuration of the installed table (its name,
// whether it fails open), false when the engine installed none.
func (e *Engine) RulesConfig() (rules.Config, bool) {
	if e.rules == nil {
		return rules.Config{}, false
	}
	return e.rules.Config(), true
}
