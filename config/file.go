package config

import (
	_ "embed"
	"time"

	"github.com/qguard/qguard/internal/daemonlog"
	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/proto"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
	"github.com/qguard/qguard/xdp"
)

// File is a parsed configuration file. Every field holds a value: the
// file's or the default.
type File struct {
	Name    string       // the file name errors were reported against
	Queue   queue.Config // the queue package's own settings (queue.DefaultConfig)
	Rules   Rules
	XDP     xdp.Config // xdp.interfaces and xdp.mode; empty Interfaces: no XDP program
	Metrics Metrics
	Control Control
	Log     Log
	Flows   verdict.FlowConfig // each queue's flow table; flows.max is Capacity
	Record  Record
	Names   Names
	Policy  verdict.Policy

	rulePos []ruleInfo     // where each policy rule and its keys are, for Compile's errors
	keys    map[string]pos // where each section and key was written, by dotted path, for ErrorAt
}

// Rules is the rules section: the rules package's Config of the table
// (defaults rules.DefaultConfig, kernel-first for a file), which the engine
// completes with the queues, the kernel-first policy and what else no key
// sets, and the two keys only the daemon reads.
type Rules struct {
	rules.Config
	Install bool // false: someone else steers traffic to the queues
	Guard   bool // re-install the table when someone else changes it
}

// Metrics is the metrics section.
type Metrics struct {
	Listen string // host:port; empty disables the endpoint
}

// Control is the control section.
type Control struct {
	Socket string // empty: the network namespace's default (service.ControlPath)
}

// Log is the log section.
type Log struct {
	Format    daemonlog.Format // text or json
	Level     daemonlog.Level  // debug, info, warn or error
	Decisions verdict.Rate     // rate limit of per-decision log lines; zero Events: none
}

// Record is the record section: JSON lines, one per decision and one per
// flow qguard decided when conntrack forgets it (docs/record.md).
type Record struct {
	Output string       // "": off; "stdout" (the journal under systemd); else a file path, reopened on SIGUSR1
	Sample int          // record one decision in Sample (per queue)
	Rate   verdict.Rate // at most this many decision records per queue
	Buffer int          // records waiting for the writer; more are counted and dropped
	Flows  bool         // flow records from conntrack destroy events
}

// Names is the names section: the DNS answers qguard reads for the
// dst_name and src_name matchers (docs/names.md). The binding table's
// settings are the names package's (names.DefaultConfig); Ports are the
// ports whose DNS queries and answers are read.
type Names struct {
	names.Config
	Ports []proto.PortRange
}

// defaults returns a File holding every default of examples/qguard.yaml.
func defaults() *File {
	return &File{
		Queue:   *queue.DefaultConfig(),
		Rules:   Rules{Config: fileRules(), Install: true, Guard: true},
		XDP:     xdp.Config{Mode: xdp.ModeAuto},
		Metrics: Metrics{Listen: "127.0.0.1:9477"},
		Control: Control{Socket: ""},
		Log:     Log{Format: daemonlog.Text, Level: daemonlog.Info, Decisions: verdict.Rate{Events: 10, Per: time.Second}},
		Record:  Record{Sample: 1, Rate: verdict.Rate{Events: 1000, Per: time.Second}, Buffer: 4096, Flows: true},
		Flows:   *verdict.DefaultFlowConfig(),
		Names:   Names{Config: *names.DefaultConfig(), Ports: []proto.PortRange{{Lo: 53, Hi: 53}}},
		Policy:  verdict.Policy{Default: verdict.ActionAccept, L7Packets: verdict.DefaultL7Packets},
	}
}

// fileRules is rules.DefaultConfig in mode kernel-first: a file's
// default (the embedded observe-mode default says queue-all).
func fileRules() rules.Config {
	c := *rules.DefaultConfig()
	c.Mode = rules.KernelFirst
	return c
}

//go:embed default.yaml
var defaultYAML []byte

// Default returns the built-in observe-mode configuration (config/default.yaml):
// all defaults and a policy that accepts every packet.
func Default() *File {
	f, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("config: embedded default.yaml: " + err.Error())
	}
	return f
}

// PipelineOptions returns the verdict pipeline options the file asks for:
// the flow table and the log rate.
func (f *File) PipelineOptions() *verdict.Options {
	lr, flows := f.Log.Decisions, f.Flows
	if lr.Events == 0 {
		lr.Per = time.Second // Events 0 with a period: logging off
	}
	return &verdict.Options{
		LogRate: lr,
		Flows:   &flows,
	}
}
