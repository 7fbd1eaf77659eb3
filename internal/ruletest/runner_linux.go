package ruletest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/qguard/qguard/internal/topo"
)

// Options tune Run; a nil *Options means defaults.
type Options struct {
	// Jobs is how many files run at once (default min(2, files)).
	Jobs int
	// Prefix names the namespaces (default "qgrt"); Leftovers(Prefix) finds
	// any that a killed run left behind.
	Prefix string
	// Verbose attaches the rule trace to passing cases too.
	Verbose bool
	// OnCase is called as each case finishes; Run serializes the calls.
	OnCase func(CaseResult)
	// Mode, when set ("kernel-first" or "queue-all"), replaces every
	// file's rules.mode, so one run checks a policy in one mode.
	Mode string

	// firewall starts qguard for one file; tests replace it.
	firewall func(ctx context.Context, t *topo.Topology, f *File) (firewall, error)
}

// DefaultPrefix names the namespaces of a run.
const DefaultPrefix = "qgrt"

// firewall is the qguard instance a file's cases run against, inside the
// topology's firewall namespace.
type firewall interface {
	// Counters returns "hits.NAME" for every rule (NAME "(default)",
	// "(invalid)", "(pending)" for the special decisions) and the queue
	// totals "packets", "accepted", "dropped", "rejected", "offloaded",
	// "marked", "cached" and "block_requests".
	Counters() map[string]uint64
	// Explain traces the recorded packets of the flow that src opened,
	// returning the rule that decides it and the trace text.
	Explain(src, dst netip.AddrPort, proto uint8) (rule, trace string)
	// Logged returns the rules named by decision log lines about the flow
	// that src opened.
	Logged(src netip.AddrPort, proto uint8) []string
	// MarkMask is the part of the packet mark qguard keeps for itself.
	MarkMask() uint32
	Close() error
}

// Run runs the files. Cancelling ctx stops the cases early; the
// namespaces, links, tables and queues of every file are removed before Run
// returns either way. The report lists files in the order given.
func Run(ctx context.Context, files []*File, o *Options) *Report {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.firewall == nil {
		opts.firewall = startEngine
	}
	if fn := opts.OnCase; fn != nil {
		var mu sync.Mutex
		opts.OnCase = func(c CaseResult) {
			mu.Lock()
			defer mu.Unlock()
			fn(c)
		}
	}
	if opts.Mode != "" {
		over := make([]*File, len(files))
		for i, f := range files {
			c := *f
			c.Mode = opts.Mode
			over[i] = &c
		}
		files = over
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 2
	}
	jobs = min(jobs, len(files))
	start := time.Now()
	results := make([]FileResult, len(files))
	sem := make(chan struct{}, max(jobs, 1))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = runFile(ctx, f, i, &opts)
		}()
	}
	wg.Wait()
	rep := &Report{Duration: time.Since(start)}
	for _, r := range results {
		rep.add(r)
	}
	return rep
}

// fileRun is one file's topology, servers and firewall.
type fileRun struct {
	f    *File
	opts *Options
	t    *topo.Topology
	fw   firewall
}

func runFile(ctx context.Context, f *File, idx int, opts *Options) (res FileResult) {
	start := time.Now()
	res.Path = f.Path
	defer func() {
		// The other defers (engine, servers, namespaces) have run by now:
		// a bug in the runner must not leave the machine dirty or take
		// the other files down.
		if p := recover(); p != nil {
			res.Error = fmt.Sprintf("internal error: %v", p)
			for i := range res.Cases {
				res.Cases[i].Passed = false
			}
		}
		res.Duration = time.Since(start)
	}()
	fail := func(err error) FileResult {
		res.Error = err.Error()
		res.Cases = unrun(f, opts, CaseResult{Outcome: Errored.String(), Detail: "file setup failed",
			Failures: []string{"setup: " + err.Error()}})
		return res
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("not run: %w", err))
	}
	t, err := topo.NewTopology(&topo.Options{Prefix: fmt.Sprintf("%s%d", opts.Prefix, idx%100), ExtraClientAddrs: f.ExtraAddrs})
	if err != nil {
		return fail(fmt.Errorf("build topology: %w", err))
	}
	defer t.Close()
	r := &fileRun{f: f, opts: opts, t: t}
	if err := warmUp(t); err != nil {
		return fail(err)
	}
	plan, err := planServers(f.Cases)
	if err != nil {
		return fail(err)
	}
	srv, err := startServers(t.Server, plan)
	if err != nil {
		return fail(fmt.Errorf("start servers: %w", err))
	}
	defer srv.close()
	if err := installObserver(t.Firewall, t.FwServerLink); err != nil {
		return fail(err)
	}
	if r.fw, err = opts.firewall(ctx, t, f); err != nil {
		if reason := missingFeature(err); reason != "" {
			return skip(f, opts, reason)
		}
		return fail(fmt.Errorf("start qguard in the firewall namespace: %w", err))
	}
	defer func() {
		if err := r.fw.Close(); err != nil && res.Error == "" {
			res.Error = fmt.Sprintf("stop qguard: %v", err)
		}
	}()
	res.Cases = r.runCases(ctx)
	return res
}

// exclusive reports whether a case needs the engine to itself: its rule
// and metric checks read counter deltas.
func exclusive(c *Case) bool { return c.Rule != "" || len(c.Metrics) > 0 }

// runCases runs the cases that need no counters concurrently (when the
// file allows), then the others one at a time, and returns results in file
// order.
func (r *fileRun) runCases(ctx context.Context) []CaseResult {
	out := make([]CaseResult, len(r.f.Cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	done := func(i int, cr CaseResult) {
		out[i] = cr
		if r.opts.OnCase != nil {
			r.opts.OnCase(cr)
		}
	}
	if r.f.Parallel {
		for i := range r.f.Cases {
			if c := &r.f.Cases[i]; !exclusive(c) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					done(i, r.runCase(ctx, c))
				}()
			}
		}
		wg.Wait()
	}
	for i := range r.f.Cases {
		if c := &r.f.Cases[i]; !r.f.Parallel || exclusive(c) {
			done(i, r.runCase(ctx, c))
		}
	}
	return out
}

// skip reports every case of f as skipped for reason.
func skip(f *File, opts *Options, reason string) FileResult {
	return FileResult{Path: f.Path, Cases: unrun(f, opts, CaseResult{Skipped: true, Detail: reason})}
}

// unrun gives every case of f the result res (with the case's own file,
// line, name and expectation) without running it, and tells opts.OnCase.
func unrun(f *File, opts *Options, res CaseResult) []CaseResult {
	var out []CaseResult
	for i := range f.Cases {
		c := &f.Cases[i]
		cr := res
		cr.File, cr.Line, cr.Name, cr.Expected, cr.ExpectedRule = f.Path, c.Line, c.Name, c.Expect.String(), c.Rule
		cr.Failures = slices.Clone(res.Failures)
		out = append(out, cr)
		if opts.OnCase != nil {
			opts.OnCase(cr)
		}
	}
	return out
}
