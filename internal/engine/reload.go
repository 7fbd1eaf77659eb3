package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/verdict"
)

// Reload replaces the policy and the rules with cfg's. It validates and
// compiles first: a bad cfg leaves everything running as it was and the
// error says why. A good one replaces the nftables rules in one transaction
// (no window without steering) and then publishes the new policy; each
// queue's goroutine swaps its pipeline before its next packet, so every
// packet is decided by exactly one policy and none is lost.
//
// Settings that cannot change without re-binding (queue numbers, XDP
// interfaces, the table name) keep their running values; Reload logs a
// warning when cfg changes them.
func (e *Engine) Reload(cfg *config.File) error {
	return e.ReloadFrom(func() (*config.File, error) { return cfg, nil })
}

// ReloadFrom is Reload with the loading inside the reload: load (e.g.
// config.Load of the daemon's file) runs as part of it, and its failure
// counts as a failed reload in Stats and the metrics.
//
// Loading and compiling run outside the lock Close takes, so a slow or hung
// load (a big prefix set, a stalled file system) never holds up a stop: a
// reload that finishes after Close returns ErrClosed and changes nothing.
// Reloads are still applied one at a time, in the order they started.
func (e *Engine) ReloadFrom(load func() (*config.File, error)) error {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	cfg, err := load()
	var set *settings
	if err == nil && cfg == nil {
		err = fmt.Errorf("reload: %w: no configuration", ErrConfig)
	}
	if err == nil {
		set, err = checkedSettings(cfg, &e.opts)
	}
	var compiled *verdict.Compiled
	if err == nil {
		compiled, err = e.compile(set)
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if err == nil {
		err = e.swap(set, compiled)
	}
	if err == nil {
		e.cfg = cfg
	}
	return e.recordReload(err)
}

// reloadSettings is ReloadFrom for settings built without a file (tests).
func (e *Engine) reloadSettings(set *settings) error {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	compiled, err := e.compile(set)
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if err == nil {
		err = e.swap(set, compiled)
	}
	return e.recordReload(err)
}

func (e *Engine) recordReload(err error) error {
	e.reloads.Add(1)
	e.lastReload = time.Now()
	e.lastReloadErr = ""
	if err != nil {
		e.reloadFailures.Add(1)
		e.lastReloadErr = err.Error()
		e.log.Error("reload failed, keeping the running policy", "err", err)
		return err
	}
	e.log.Info("reloaded", "rules", len(e.gen.Load().policy.Rules))
	return nil
}

// compile compiles set's policy, naming interfaces in the queues'
// namespace.
func (e *Engine) compile(set *settings) (*verdict.Compiled, error) {
	o := &verdict.CompileOptions{}
	if e.links != nil {
		o.Ifaces = e.links.ifaces
	}
	e.nameOptions(o, set)
	compiled, err := set.compiled(o)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w: %w", ErrConfig, err)
	}
	return compiled, nil
}

// swap replaces the rules with set's and publishes its compiled policy.
// Called with reloadMu held, the engine not closed.
func (e *Engine) swap(set *settings, compiled *verdict.Compiled) error {
	e.keepRestartOnly(set)
	if e.rules != nil {
		if !set.installRules {
			e.log.Warn("rules.install changed to false: takes effect on restart")
		}
		old := e.kernelHits()
		if err := e.rules.Replace(set.rules); err != nil {
			return fmt.Errorf("replace nftables rules: %w", err)
		}
		e.foldKernelHits(old)
		if e.nflog == nil { // a reload into kernel-first
			e.openNflog(set.rules)
			if e.nflog != nil && e.startOnce.Load() {
				e.nflog.start()
			}
		}
		if g := e.guard.Load(); g != nil {
			g.SetRepair(set.guardRules)
		}
	}
	set.installRules = e.rules != nil
	g := e.newGeneration(set.policy, compiled)
	g.flowMarks = e.rules != nil && set.rules.Offload
	e.gen.Store(g)
	if e.names != nil {
		e.names.SetFilter(compiled.NameFilter())
	}
	e.set = set
	return nil
}

// keepRestartOnly puts the running values of settings that need a restart
// back into set, warning about each one the new file changed.
func (e *Engine) keepRestartOnly(set *settings) {
	old := e.set
	if set.queue.Num != old.queue.Num || set.queue.Count != old.queue.Count {
		e.log.Warn("queue numbers changed: takes effect on restart",
			"running", fmt.Sprintf("%d:%d", old.queue.Num, old.queue.Count),
			"file", fmt.Sprintf("%d:%d", set.queue.Num, set.queue.Count))
	}
	set.queue = old.queue
	if set.rules != nil && old.rules != nil {
		set.rules.QueueNum, set.rules.QueueCount = old.rules.QueueNum, old.rules.QueueCount
		if set.rules.Table != old.rules.Table {
			e.log.Warn("rules table name changed: takes effect on restart", "running", old.rules.Table)
			set.rules.Table = old.rules.Table
		}
	}
	if namesChanged(old.names, set.names) {
		e.log.Warn("names section (ttls, bounds, servers) changed: takes effect on restart; names.ports applies now")
	}
	var oldIf, newIf []string
	if old.xdp != nil {
		oldIf = old.xdp.Interfaces
	}
	if set.xdp != nil {
		newIf = set.xdp.Interfaces
	}
	if !slices.Equal(oldIf, newIf) {
		e.log.Warn("xdp interfaces changed: takes effect on restart", "running", oldIf, "file", newIf)
	}
	set.xdp = old.xdp
	if set.marks != old.marks {
		e.log.Warn("rules.marks changed: takes effect on restart")
		set.marks = old.marks
		if set.rules != nil {
			set.rules.Marks = old.marks
		}
	}
	set.pipeline = old.pipeline
}
