// Package engine wires qguard's parts into a running firewall: the queue
// engine (package queue), one verdict pipeline per queue (package verdict),
// the nftables rules that steer traffic into the queues (package rules) and
// the optional XDP early-drop program (package xdp). `qguard run` wraps it
// with signals, a metrics endpoint and the control socket, notifications
// and build information of package internal/service; the rule-test
// runner and the benchmark harness use it directly.
//
// # Life cycle
//
//	e, err := engine.New(cfg, &engine.Options{Logger: log})  // nil cfg: config.Default()
//	err = e.Start(ctx)           // returns at once; e.Done() closes if the queues fail
//	err = e.Reload(newCfg)       // or e.ReloadFrom(func() (*config.File, error) { ... })
//	stats := e.Stats()           // counters, per queue and per rule (qguard status, metrics)
//	hits := e.RuleHits()         // per rule, policy order, then (default) (invalid) (pending) (stage) (undecided)
//	n := e.Hits("rule-name")     // one rule's decisions, kept across reloads
//	tr := e.Trace(raw, &meta)    // which rule decides raw, and why (own pipeline)
//	err = e.Close()              // guard off, quiesce and drain, block goroutine off, unbind, remove table, detach XDP
//
// New validates, probes the kernel once, binds every queue or none,
// compiles the policy, installs the rules and attaches XDP; each step
// pushes its own undo, and a failure runs them in reverse order (open.go). With Options.Offline it touches no kernel object: Handle, Decide
// and Trace decide hand-made packets, which is how offline rule tests and
// handler benchmarks run. Options.Stages adds user stages to every
// pipeline (the rule-test runner records packets with one). Marks, Queues,
// Policy, Config and RulesInstalled describe what is running.
//
// # Namespaces
//
// Queues and XDP are opened in the network namespace of the thread calling
// New, so a library user calls New inside topo.NS.Do. The rules follow it:
// when that thread's namespace is not the one the process's other threads
// share, New opens /proc/thread-self/ns/net (unless Options.NetNS names a
// namespace) and the rules setns into it, since the block goroutine, Reload
// and Close may run on any thread. That needs CAP_SYS_ADMIN; a daemon
// working in its own namespace (also when Options.NetNS names that one)
// never calls setns and needs CAP_NET_ADMIN alone. Interface names in a
// reloaded policy are resolved in the namespace of the thread calling
// Reload.
//
// # Packet path
//
// Handle turns a queue.Packet into a verdict.Meta in a per-queue value,
// calls the queue's Pipeline.Decide, counts the rule hit and maps the
// Decision onto the queue verdict, allocating nothing:
//
//	accept, drop            -> NF_ACCEPT, NF_DROP (with the rule's mark, if any)
//	reject                  -> NF_REPEAT + marks.reject: qguard's chain answers
//	                           with a TCP reset or ICMP unreachable
//	flow accept / drop      -> NF_REPEAT + marks.accept_flow / drop_flow: the
//	                           chain copies it to the conntrack mark and decides
//	                           the flow's later packets in the kernel
//	block_source            -> non-blocking send to a bounded channel; a
//	                           goroutine calls xdp.Filter.BlockSource (when
//	                           attached) or rules.Manager.BlockSource
//
// Without qguard's rules (Options.NoRules, rules.install: false, Offline)
// nobody acts on the marks, so reject becomes drop and flow offload is off.
//
// # Reload
//
// Reload compiles first and keeps the running policy on any error. Then it
// replaces the rules in one nftables transaction and publishes the new
// compiled policy with an atomic pointer; each queue's goroutine swaps its
// own pipeline before its next packet, so each packet is decided by exactly
// one policy and counted against that policy's rules. Rule hit counters are
// kept by rule name across reloads.
//
// # Counters
//
// Per-queue counters are atomics written only by that queue's goroutine and
// padded apart (an uncontended add costs a few nanoseconds); rule counters
// have one padded slot per queue. The decision latency is timed for one
// packet in SampleEvery (64) to keep clock reads off most packets. Stats
// reads everything at once for `qguard status` and the Prometheus collector
// in internal/metrics.
//
// # Privileges
//
// New needs CAP_NET_ADMIN (queues, nftables) and, with XDP, CAP_BPF and
// CAP_PERFMON.
//
// # Concurrency
//
// Handle is called by the queue engine, once per queue at a time. Start,
// Reload, Close and Stats may be called from any goroutine; Reload and Close
// are serialized. Decide and Trace use a separate pipeline under a lock.
package engine
