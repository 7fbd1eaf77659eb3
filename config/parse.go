package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qguard/qguard/internal/yamlpos"
	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/proto"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
	"github.com/qguard/qguard/xdp"
)

// Load reads (ReadFile) and parses the file at path.
func Load(path string) (*File, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a configuration file's contents; name is used in errors and
// to resolve relative paths (prefix set files). Every problem is reported in
// the returned *ErrorList.
func Parse(name string, data []byte) (*File, error) { return ParseSections(name, data) }

// ParseSections is Parse of only the named top-level sections of data (all
// of them when none is named); the others are left to another parser. A
// rule-test file carries its policy, queue and rules sections beside its
// cases this way, and errors keep the test file's lines and columns.
func ParseSections(name string, data []byte, sections ...string) (*File, error) {
	d := &decoder{file: name, dir: filepath.Dir(name), keys: map[string]pos{}}
	f := defaults()
	f.Name, f.keys = name, d.keys
	root, probs := yamlpos.Decode(data)
	for _, p := range probs {
		if p.Syntax {
			d.errAt(pos{p.Line, p.Col}, "YAML syntax: %s", p.Msg)
		} else {
			d.errAt(pos{p.Line, p.Col}, "%s", p.Msg)
		}
	}
	if root != nil && len(d.errs) == 0 {
		if len(sections) > 0 && root.Kind == yaml.MappingNode {
			root = yamlpos.Sections(root, sections...)
		}
		d.file1(f, root)
	}
	if err := d.result(); err != nil {
		return nil, err
	}
	return f, nil
}

// decoder walks the node tree, collecting errors.
type decoder struct {
	file string
	dir  string
	errs []*Error
	keys map[string]pos // File.keys
}

// topLevel is what mapping calls the file's top level in messages.
const topLevel = "the top level"

// pos is a place in the file.
type pos struct{ line, col int }

func at(n *yaml.Node) pos { return pos{n.Line, n.Column} }

func (d *decoder) errAt(p pos, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errf(n *yaml.Node, format string, args ...any) { d.errAt(at(n), format, args...) }

func (d *decoder) result() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	return &ErrorList{Errs: d.errs}
}

// fields maps the keys of a mapping to their parsers.
type fields map[string]func(v *yaml.Node)

// mapping calls the parser of each key of n, reporting unknown and
// duplicate keys. what names the mapping in messages.
func (d *decoder) mapping(n *yaml.Node, what string, fs fields) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return // "section:" with nothing under it: all defaults
		}
		d.errf(n, "%s: expected a mapping of keys, found %s", what, yamlpos.Kind(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "%s: expected a key name, found %s", what, yamlpos.Kind(k))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errf(k, "%s: duplicate key %q (first set on line %d)", what, k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		if what == topLevel {
			d.keys[k.Value] = at(v)
		} else {
			d.keys[what+"."+k.Value] = at(v)
		}
		fn, ok := fs[k.Value]
		if !ok {
			d.errf(k, "unknown key %q in %s; expected one of: %s", k.Value, what, keyList(fs))
			continue
		}
		fn(v)
	}
}

func keyList(fs fields) string {
	ks := make([]string, 0, len(fs))
	for k := range fs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ", ")
}

// list calls fn for each item of a sequence; a single scalar counts as a
// one-item list.
func (d *decoder) list(n *yaml.Node, what string, fn func(item *yaml.Node)) {
	switch {
	case n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			fn(c)
		}
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
	case n.Kind == yaml.ScalarNode:
		fn(n)
	default:
		d.errf(n, "%s: expected a list, found %s", what, yamlpos.Kind(n))
	}
}

// file1 parses the top level.
func (d *decoder) file1(f *File, n *yaml.Node) {
	d.mapping(n, topLevel, fields{
		"queue":   func(v *yaml.Node) { d.queue(&f.Queue, v) },
		"rules":   func(v *yaml.Node) { d.rules(&f.Rules, v) },
		"xdp":     func(v *yaml.Node) { d.xdp(&f.XDP, v) },
		"metrics": func(v *yaml.Node) { d.mapping(v, "metrics", fields{"listen": d.listenAddr(&f.Metrics.Listen)}) },
		"control": func(v *yaml.Node) {
			d.mapping(v, "control", fields{"socket": d.str(&f.Control.Socket, "control.socket")})
		},
		"log":    func(v *yaml.Node) { d.log(&f.Log, v) },
		"flows":  func(v *yaml.Node) { d.flows(&f.Flows, v) },
		"record": func(v *yaml.Node) { d.record(&f.Record, v) },
		"names":  func(v *yaml.Node) { d.names1(&f.Names, v) },
		"policy": func(v *yaml.Node) { f.rulePos = d.policy(&f.Policy, v) },
	})
	d.crossCheck(f)
}

func (d *decoder) queue(q *queue.Config, n *yaml.Node) {
	var numPos, countPos *yaml.Node
	d.mapping(n, "queue", fields{
		"num":   func(v *yaml.Node) { numPos = v; q.Num = uint16(d.intIn(v, "queue.num", 0, 65535, int(q.Num))) },
		"count": func(v *yaml.Node) { countPos = v; q.Count = uint16(d.intIn(v, "queue.count", 1, 65535, int(q.Count))) },
		"copy_range": func(v *yaml.Node) {
			q.CopyRange = uint32(d.sizeIn(v, "queue.copy_range", 0, 65535, int64(q.CopyRange)))
		},
		"max_len":         func(v *yaml.Node) { q.MaxLen = uint32(d.intIn(v, "queue.max_len", 1, 1<<31-1, int(q.MaxLen))) },
		"fail_open":       d.flag(&q.Flags, queue.FlagFailOpen, "queue.fail_open"),
		"gso":             d.flag(&q.Flags, queue.FlagGSO, "queue.gso"),
		"uid_gid":         d.flag(&q.Flags, queue.FlagUIDGID, "queue.uid_gid"),
		"conntrack":       d.flag(&q.Flags, queue.FlagConntrack, "queue.conntrack"),
		"rcvbuf":          func(v *yaml.Node) { q.RcvBuf = int(d.sizeIn(v, "queue.rcvbuf", 0, 1<<31-1, int64(q.RcvBuf))) },
		"verdict_mode":    d.text(&q.VerdictMode, "queue.verdict_mode"),
		"batch_size":      func(v *yaml.Node) { q.BatchSize = d.intIn(v, "queue.batch_size", 1, queue.MaxBatchSize, q.BatchSize) },
		"flush_interval":  d.duration(&q.FlushInterval, "queue.flush_interval"),
		"default_verdict": d.text(&q.DefaultVerdict, "queue.default_verdict"),
	})
	if int(q.Num)+int(q.Count)-1 > 65535 {
		at := countPos
		if at == nil {
			at = numPos
		}
		d.errf(at, "queue.num + queue.count - 1 = %d: expected queue numbers up to 65535", int(q.Num)+int(q.Count)-1)
	}
}

func (d *decoder) rules(r *Rules, n *yaml.Node) {
	st := &r.Steer
	d.mapping(n, "rules", fields{
		"install": d.boolean(&r.Install, "rules.install"),
		"mode":    d.text(&r.Mode, "rules.mode"),
		"table":   func(v *yaml.Node) { d.ident(&r.Table, v, "rules.table") },
		"hooks":   func(v *yaml.Node) { r.Hooks = d.hooks(v) },
		"protocols": func(v *yaml.Node) {
			st.Protocols = nil
			d.list(v, "rules.protocols", func(it *yaml.Node) {
				if s, ok := d.scalarString(it, "rules.protocols"); ok {
					if _, known := proto.Number(s); !known {
						d.errf(it, "unknown protocol %q in rules.protocols; expected one of: %s", s, protoList)
						return
					}
					st.Protocols = append(st.Protocols, s)
				}
			})
		},
		"dports":        func(v *yaml.Node) { st.DPorts = d.ports(v, "rules.dports") },
		"sports":        func(v *yaml.Node) { st.SPorts = d.ports(v, "rules.sports") },
		"in_ifaces":     func(v *yaml.Node) { st.InIfs = d.ifaceNames(v, "rules.in_ifaces") },
		"out_ifaces":    func(v *yaml.Node) { st.OutIfs = d.ifaceNames(v, "rules.out_ifaces") },
		"new_only":      d.boolean(&st.NewOnly, "rules.new_only"),
		"bypass":        d.boolean(&r.Bypass, "rules.bypass"),
		"offload":       d.boolean(&r.Offload, "rules.offload"),
		"marks":         func(v *yaml.Node) { d.marks(&r.Marks, v) },
		"block_timeout": d.duration(&r.BlockSetTimeout, "rules.block_timeout"),
		"guard":         d.boolean(&r.Guard, "rules.guard"),
	})
}

// hooks parses rules.hooks; the names are the rules package's.
func (d *decoder) hooks(v *yaml.Node) []rules.Hook {
	var out []rules.Hook
	names := rules.HookNames()
	d.list(v, "rules.hooks", func(it *yaml.Node) {
		h := rules.Hook{}
		var hookSet bool
		d.mapping(it, "a rules.hooks entry", fields{
			"hook":     func(v *yaml.Node) { hookSet = true; d.oneOf(&h.Name, "hook", names...)(v) },
			"priority": func(v *yaml.Node) { h.Priority = int32(d.intIn(v, "priority", -1<<31, 1<<31-1, 0)) },
		})
		if !hookSet && it.Kind == yaml.MappingNode {
			d.errf(it, "rules.hooks entry: missing key \"hook\"; expected one of: %s", strings.Join(names, ", "))
		}
		out = append(out, h)
	})
	if len(out) == 0 {
		d.errf(v, "rules.hooks: expected at least one hook, like [{hook: forward, priority: 0}]")
	}
	return out
}

var protoList = strings.Join(proto.Names(), ", ")

// marks parses rules.marks. What the values must be (inside the mask,
// distinct) is the rules package's check; a mask written as 0 is refused
// here, because rules reads a zero mask as "the default marks".
func (d *decoder) marks(m *rules.Marks, n *yaml.Node) {
	d.mapping(n, "rules.marks", fields{
		"mask": func(v *yaml.Node) {
			if m.Mask = uint32(d.uintIn(v, "rules.marks.mask", 0, 1<<32-1, uint64(m.Mask))); m.Mask == 0 {
				d.errf(v, "rules.marks.mask: expected a non-zero mask")
			}
		},
		"accept_flow": d.mark(&m.AcceptFlow, "rules.marks.accept_flow"),
		"drop_flow":   d.mark(&m.DropFlow, "rules.marks.drop_flow"),
		"reject":      d.mark(&m.Reject, "rules.marks.reject"),
	})
}

func (d *decoder) mark(dst *uint32, what string) func(*yaml.Node) {
	return func(v *yaml.Node) { *dst = uint32(d.uintIn(v, what, 0, 1<<32-1, uint64(*dst))) }
}

func (d *decoder) xdp(x *xdp.Config, n *yaml.Node) {
	d.mapping(n, "xdp", fields{
		"interfaces": func(v *yaml.Node) { x.Interfaces = d.ifaceNames(v, "xdp.interfaces") },
		"mode":       d.text(&x.Mode, "xdp.mode"),
	})
}

func (d *decoder) log(l *Log, n *yaml.Node) {
	d.mapping(n, "log", fields{
		"format":    d.text(&l.Format, "log.format"),
		"level":     d.text(&l.Level, "log.level"),
		"decisions": func(v *yaml.Node) { l.Decisions = d.rate(v, "log.decisions", true, l.Decisions) },
	})
}

func (d *decoder) record(r *Record, n *yaml.Node) {
	d.mapping(n, "record", fields{
		"output": func(v *yaml.Node) {
			if s, ok := d.scalarString(v, "record.output"); ok {
				r.Output = s
			}
		},
		"sample": func(v *yaml.Node) { r.Sample = d.intIn(v, "record.sample", 1, 1<<30, r.Sample) },
		"rate":   func(v *yaml.Node) { r.Rate = d.rate(v, "record.rate", false, r.Rate) },
		"buffer": func(v *yaml.Node) { r.Buffer = d.intIn(v, "record.buffer", 16, 1<<20, r.Buffer) },
		"flows":  d.boolean(&r.Flows, "record.flows"),
	})
}

func (d *decoder) flows(f *verdict.FlowConfig, n *yaml.Node) {
	d.mapping(n, "flows", fields{
		"max":             func(v *yaml.Node) { f.Capacity = d.flowMax(v, f.Capacity) },
		"tcp_timeout":     d.duration(&f.TCPTimeout, "flows.tcp_timeout"),
		"udp_timeout":     d.duration(&f.UDPTimeout, "flows.udp_timeout"),
		"other_timeout":   d.duration(&f.OtherTimeout, "flows.other_timeout"),
		"closing_timeout": d.duration(&f.ClosingTimeout, "flows.closing_timeout"),
		"hello_buffers":   func(v *yaml.Node) { f.HelloBuffers = d.intIn(v, "flows.hello_buffers", 1, 65535, f.HelloBuffers) },
	})
}

func (d *decoder) names1(nm *Names, n *yaml.Node) {
	d.mapping(n, "names", fields{
		"min_ttl": d.positive(&nm.MinTTL, "names.min_ttl"),
		"max_ttl": d.positive(&nm.MaxTTL, "names.max_ttl"),
		"max_bindings": func(v *yaml.Node) {
			nm.MaxBindings = d.intIn(v, "names.max_bindings", 1, names.MaxBindingsLimit, nm.MaxBindings)
		},
		"max_pending": func(v *yaml.Node) {
			nm.MaxPending = d.intIn(v, "names.max_pending", 1, names.MaxPendingLimit, nm.MaxPending)
		},
		"servers": func(v *yaml.Node) {
			var sets []string
			if nm.Servers, sets = d.prefixes(v, "names.servers"); len(sets) > 0 {
				d.errf(v, "names.servers: prefix sets (@%s) are for policy rules; list the resolvers' addresses", sets[0])
			}
		},
		"ports": func(v *yaml.Node) {
			if nm.Ports = d.ports(v, "names.ports"); len(nm.Ports) == 0 {
				d.errf(v, "names.ports: expected at least one port, like [53]")
			}
		},
	})
}

// positive is a duration that must not be 0 when written (the owner reads 0
// as its default).
func (d *decoder) positive(dst *time.Duration, what string) func(*yaml.Node) {
	return func(v *yaml.Node) {
		d.duration(dst, what)(v)
		if *dst <= 0 {
			d.errf(v, "%s: expected a positive duration like 60s", what)
		}
	}
}
