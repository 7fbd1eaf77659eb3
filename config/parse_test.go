package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
)

// TestErrors feeds one mistake of each kind and checks the position and
// the sentence reported.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // "line:col: message" prefixes, in order
	}{
		{"unknown top-level key", "queue: {}\npolicyy: {}\n",
			[]string{`2:1: unknown key "policyy" in the top level; expected one of: control, flows, log, metrics, names, policy, queue, record, rules, xdp`}},
		{"unknown nested key", "queue:\n  num: 1\n  cont: 2\n",
			[]string{`3:3: unknown key "cont" in queue; expected one of: batch_size,`}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n",
			[]string{`3:3: log: duplicate key "level" (first set on line 2)`}},
		{"wrong type", "queue:\n  count: [1]\n  gso: yes please\n",
			[]string{`2:10: queue.count: expected a whole number, found a list`, `3:8: queue.gso: expected true or false, found "yes please"`}},
		{"out of range", "queue: {num: 65535, count: 2}\n",
			[]string{`1:28: queue.num + queue.count - 1 = 65536: expected queue numbers up to 65535`}},
		{"bad enum", "queue:\n  verdict_mode: fast\n",
			[]string{`2:17: queue.verdict_mode: unknown verdict mode "fast"; expected one of: batch, vectored, per-packet`}},
		{"bad duration", "rules:\n  block_timeout: 10 minutes\n",
			[]string{`2:18: rules.block_timeout: "10 minutes" is not a duration; expected a positive number with a unit`}},
		{"bad size", "queue:\n  rcvbuf: 8 parsecs\n",
			[]string{`2:11: queue.rcvbuf: "8 parsecs" is not a size; expected bytes like 65535, 64KiB or 8MiB`}},
		{"bad rate", "log:\n  decisions: 10 per second\n",
			[]string{`2:14: log.decisions: "10 per second" is not a rate; expected a positive count per unit like 10/s`}},
		{"bad ports", "rules:\n  dports: [53, \"8100-8000\", 70000, http]\n",
			[]string{`2:16: rules.dports: range "8100-8000" runs backwards`, `2:29: rules.dports: "70000" is not a port; expected a number 0-65535`, `2:36: rules.dports: "http" is not a port`}},
		{"zero mask", "rules:\n  marks: {mask: 0}\n",
			[]string{`2:17: rules.marks.mask: expected a non-zero mask`}},
		{"bad mode", "rules:\n  mode: kernel-only\n",
			[]string{`2:9: rules.mode: unknown rules mode "kernel-only"; expected one of: queue-all, kernel-first`}},
		{"bad hook", "rules:\n  hooks: [{hook: sideways}]\n",
			[]string{`2:18: hook: unknown value "sideways"; expected one of: prerouting, input, forward, output, postrouting`}},
		{"no hooks", "rules:\n  hooks: []\n",
			[]string{`2:10: rules.hooks: expected at least one hook`}},
		{"unknown protocol", "rules:\n  protocols: [tcp, tpc]\n",
			[]string{`2:20: unknown protocol "tpc" in rules.protocols`}},
		{"bad listen", "metrics: {listen: localhost}\n",
			[]string{`1:19: metrics.listen: "localhost": expected host:port`}},
		{"unknown action", "policy:\n  rules:\n    - name: a\n      action: allow\n",
			[]string{`4:15: action: unknown action "allow"; expected accept, drop, reject or alert`}},
		{"alert as default", "policy:\n  default: alert\n",
			[]string{`2:12: policy.default: unknown action "alert"; expected accept, drop or reject`}},
		{"alert_as accept", "policy:\n  rules:\n    - {name: a, action: alert, alert_as: accept}\n",
			[]string{`3:42: alert_as: an alert trials drop or reject; expected drop or reject`}},
		{"default verdict reject", "queue: {default_verdict: reject}\n",
			[]string{`1:26: queue.default_verdict: unknown verdict "reject"; expected one of: accept, drop`}},
		{"duplicate rule names", "policy:\n  rules:\n    - {name: a, action: drop}\n    - {name: b, action: drop}\n    - {name: a, action: drop}\n",
			[]string{`5:14: duplicate rule name "a" (first used on line 3); expected unique names`}},
		{"missing name and action", "policy:\n  rules:\n    - match: {proto: tcp}\n",
			[]string{`3:7: policy rule: missing key "name"`, `3:7: policy rule: missing key "action"`}},
		{"unknown match key", "policy:\n  rules:\n    - name: a\n      match: {port: 80}\n      action: drop\n",
			[]string{`4:15: unknown key "port" in match; expected one of: ct, dns, dport, dst, dst_name, family, gid, http_host, in_iface, mark, out_iface, payload, proto, sni, sport, src, src_name, uid`}},
		{"bad prefixes", "policy:\n  rules:\n    - name: a\n      match: {src: [\"198.18.1.1/15\", \"10.0.0.300\", \"::ffff:1.2.3.0/120\"]}\n      action: drop\n",
			[]string{`4:21: src: "198.18.1.1/15" has bits set past the prefix length; expected 198.18.0.0/15`,
				`4:38: src: "10.0.0.300" is not an address or prefix`, `4:52: src: "::ffff:1.2.3.0/120" is an IPv4-mapped IPv6 prefix`}},
		{"unknown set", "policy:\n  rules:\n    - name: a\n      match: {dst: [\"@nope\"]}\n      action: drop\n",
			[]string{`4:15: dst: unknown prefix set "@nope"; define it under policy.sets`}},
		{"bad names", "policy:\n  rules:\n    - name: a\n      match: {dns: [\"a..b\"], sni: [\"x.*.y\"]}\n      action: drop\n",
			[]string{`4:21: dns: "a..b": bad name pattern`, `4:36: sni: "x.*.y": bad name pattern`}},
		{"bad bound names", "policy:\n  rules:\n    - name: a\n      match: {dst_name: [\"a..b\"], src_name: [\"x.*.y\"]}\n      action: drop\n",
			[]string{`4:26: dst_name: "a..b": bad name pattern`, `4:46: src_name: "x.*.y": bad name pattern`}},
		{"bad names section", "names:\n  min_ttl: 2h\n  max_ttl: 1h\n  max_bindings: 0\n  ports: []\n  max_pending: lots\n",
			[]string{`4:17: names.max_bindings: 0 is out of range`,
				`5:10: names.ports: expected at least one port`, `6:16: names.max_pending: expected a whole number`}},
		{"bad servers", "names: {servers: [\"10.0.0.1/8\", \"@set\"]}\n",
			[]string{`1:18: names.servers: prefix sets (@set) are for policy rules`, `1:19: names.servers: "10.0.0.1/8" has bits set past the prefix length`}},
		{"zero ttl", "names: {min_ttl: 0}\n",
			[]string{`1:18: names.min_ttl: expected a positive duration like 60s`}},
		{"bad mark match", "policy:\n  rules:\n    - name: a\n      match: {mark: \"0x11/0x10\"}\n      action: drop\n",
			[]string{`4:21: mark: value 0x11 has bits outside the mask 0x10`}},
		{"bad payload", "policy:\n  rules:\n    - name: a\n      match: {payload: [\"hex:zz\", \"\"]}\n      action: drop\n",
			[]string{`4:25: payload: "hex:zz": expected hex digits`, `4:35: payload: empty pattern`}},
		{"ct needs conntrack", "policy:\n  rules:\n    - name: a\n      match: {ct: [new]}\n      action: drop\n",
			[]string{`4:15: ct: rule "a" matches conntrack state, which needs queue.conntrack: true`}},
		{"uid needs uid_gid", "policy:\n  rules:\n    - name: a\n      match: {uid: [0]}\n      action: drop\n",
			[]string{`4:15: uid: rule "a" matches socket owners, which needs queue.uid_gid: true`}},
		{"bad ct state", "queue: {conntrack: true}\npolicy:\n  rules:\n    - name: a\n      match: {ct: [fresh]}\n      action: drop\n",
			[]string{`5:20: ct: unknown conntrack state "fresh"`}},
		{"bad rate limit", "policy:\n  rules:\n    - name: a\n      action: accept\n      rate_limit: {rate: fast, key: ip}\n",
			[]string{`5:26: rate_limit.rate: "fast" is not a rate`, `5:37: rate_limit.key: unknown key "ip"; expected source, flow or rule`}},
		{"flow with rate limit", "policy:\n  rules:\n    - name: a\n      action: accept\n      flow: true\n      rate_limit: {rate: 1/s}\n",
			[]string{`5:7: flow: true hands the flow to the kernel`}},
		{"bad family", "policy:\n  rules:\n    - name: a\n      match: {family: ipx}\n      action: drop\n",
			[]string{`4:23: family: unknown family "ipx"; expected ipv4 or ipv6`}},
		{"alias", "a: &x {num: 1}\nqueue: *x\n",
			[]string{`1:4: anchors (&x) are not supported`, `2:8: aliases (*x) are not supported`}},
		{"syntax", "queue:\n  num: 1\n num2: [\n",
			[]string{`2: YAML syntax: did not find expected key`}},
		{"two documents", "queue: {}\n---\nqueue: {}\n",
			[]string{`2:1: a second YAML document (after ---)`}},
		{"not a mapping", "- queue\n",
			[]string{`1:1: the top level: expected a mapping of keys, found a list`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.yaml))
			var l *ErrorList
			if !errors.As(err, &l) {
				t.Fatalf("Parse error %v is not an *ErrorList", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Error("not errors.Is ErrInvalid")
			}
			if len(l.Errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(l.Errs), len(tc.want), err)
			}
			for i, w := range tc.want {
				got := l.Errs[i].Error()
				if !strings.HasPrefix(got, "test.yaml:"+w) {
					t.Errorf("error %d:\n got %s\nwant test.yaml:%s...", i, got, w)
				}
			}
		})
	}
}

// TestReferenceFileIsDefaults checks that examples/qguard.yaml, which
// documents the defaults, states the same values as the code.
func TestReferenceFileIsDefaults(t *testing.T) {
	f, err := Load("../examples/qguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := defaults()
	for _, s := range []struct {
		name      string
		got, want any
	}{{"queue", f.Queue, def.Queue}, {"rules", f.Rules, def.Rules}, {"xdp", f.XDP, def.XDP},
		{"metrics", f.Metrics, def.Metrics}, {"control", f.Control, def.Control}, {"log", f.Log, def.Log},
		{"flows", f.Flows, def.Flows}, {"names", f.Names, def.Names}} {
		if !reflect.DeepEqual(s.got, s.want) {
			t.Errorf("%s:\nfile     %+v\ndefaults %+v", s.name, s.got, s.want)
		}
	}
	if f.Policy.Default != def.Policy.Default || f.Policy.L7Packets != def.Policy.L7Packets || len(f.Policy.Rules) != 6 {
		t.Errorf("policy %+v", f.Policy)
	}
}

func TestDefault(t *testing.T) {
	f := Default()
	if f.Policy.Default != verdict.ActionAccept || len(f.Policy.Rules) != 0 || !reflect.DeepEqual(f.Queue, defaults().Queue) {
		t.Errorf("Default() = %+v", f)
	}
	if _, err := f.Compile(nil); err != nil {
		t.Error(err)
	}
	empty, err := Parse("empty.yaml", nil)
	if err != nil || !reflect.DeepEqual(empty.Rules, defaults().Rules) {
		t.Errorf("empty file: %v %+v", err, empty)
	}
}

func TestParseValues(t *testing.T) {
	f, err := Parse("v.yaml", []byte(`
queue: {rcvbuf: 4MiB, copy_range: 64KB, flush_interval: 250us, default_verdict: drop}
log: {decisions: off}
flows: {max: 1024, udp_timeout: 5s}
policy:
  default: drop
  invalid: reject
  l7_packets: 4
  l7_undecided: accept
  sets:
    s: ["198.18.0.0/15", "2001:db8::1"]
  rules:
    - name: all
      match:
        family: ipv6
        proto: [tcp, 132]
        src: ["@s", "10.0.0.0/8"]
        sport: 1024
        dport: [53, "8000-8100"]
        in_iface: [eth0, 3]
        mark: "0x10/0xf0"
        dns: ["*.example"]
        payload: ["ab", "hex:00ff"]
      action: reject
      mark: 0x42
      log: true
      block_source: 5m
      rate_limit: {rate: 600/m, burst: 20, key: flow, exceed: reject, max_keys: 99}
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Queue.RcvBuf != 4<<20 || f.Queue.CopyRange != 64000 || f.Queue.FlushInterval != 250*time.Microsecond || f.Queue.DefaultVerdict != queue.Drop {
		t.Errorf("queue %+v", f.Queue)
	}
	if f.Log.Decisions.Events != 0 || f.Flows.Capacity != 1024 || f.Flows.UDPTimeout != 5*time.Second || f.Flows.TCPTimeout != verdict.DefaultTCPTimeout {
		t.Errorf("log %+v flows %+v", f.Log, f.Flows)
	}
	p := f.Policy
	r := p.Rules[0]
	m := r.Match
	want := verdict.Match{Family: 6, Protos: []uint8{6, 132}, SrcSets: []string{"s"}, Src: m.Src,
		SrcPorts: []verdict.PortRange{{Lo: 1024, Hi: 1024}}, DstPorts: []verdict.PortRange{{Lo: 53, Hi: 53}, {Lo: 8000, Hi: 8100}},
		InIfaces: []string{"eth0"}, InIfIndexes: []uint32{3}, Mark: &verdict.MarkMatch{Value: 0x10, Mask: 0xf0},
		DNS: []string{"*.example"}, Payload: [][]byte{[]byte("ab"), {0, 0xff}}}
	if !reflect.DeepEqual(m, want) || len(m.Src) != 1 || m.Src[0].String() != "10.0.0.0/8" {
		t.Errorf("match\n got %+v\nwant %+v", m, want)
	}
	if p.Default != verdict.ActionDrop || p.Invalid != verdict.ActionReject || p.L7Packets != 4 ||
		p.L7Undecided != verdict.ActionAccept || len(p.Sets["s"]) != 2 ||
		p.Sets["s"][1].String() != "2001:db8::1/128" {
		t.Errorf("policy %+v", p)
	}
	rl := verdict.RateLimit{Rate: verdict.Rate{Events: 600, Per: time.Minute}, Burst: 20, Key: verdict.RateKeyFlow,
		Exceed: verdict.ActionReject, MaxKeys: 99}
	if r.Action != verdict.ActionReject || !r.SetMark || r.Mark != 0x42 || !r.Log || r.BlockSource != 5*time.Minute || *r.RateLimit != rl {
		t.Errorf("rule %+v %+v", r, r.RateLimit)
	}
	// eth0 may not exist here: names are not resolved when compiling.
	if _, err := f.Compile(nil); err != nil {
		t.Error(err)
	}
	o := f.PipelineOptions()
	if o.Flows.Capacity != 1024 || o.LogRate.Events != 0 || o.LogRate.Per == 0 {
		t.Errorf("pipeline options %+v", o)
	}
}

func TestSetFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "list.txt"), []byte("# c\n198.18.0.0/15\n\n10.0.0.1 # host\nbogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "q.yaml")
	if err := os.WriteFile(cfg, []byte("policy:\n  sets:\n    l: {file: list.txt}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(cfg)
	if err == nil || err.Error() != filepath.Join(dir, "list.txt")+`:5:1: prefix: "bogus" is not an address or prefix; expected one like 198.18.0.0/15 or 2001:db8::/32` {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "list.txt"), []byte("198.18.0.0/15\n10.0.0.1\n"), 0o644)
	f, err := Load(cfg)
	if err != nil || len(f.Policy.Sets["l"]) != 2 {
		t.Fatalf("%v %+v", err, f.Policy.Sets)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: %v", err)
	}
}

// TestRulesMode: files are kernel-first unless they say otherwise; the
// embedded observe-mode default queues everything, to show what the queue
// sees.
func TestRulesMode(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"policy: {default: accept}\n", "kernel-first"},
		{"rules: {mode: queue-all}\n", "queue-all"},
		{"rules: {mode: kernel-first}\n", "kernel-first"},
	} {
		f, err := Parse("t.yaml", []byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if f.Rules.Mode.String() != c.want {
			t.Errorf("%q: mode %q, want %q", c.yaml, f.Rules.Mode, c.want)
		}
	}
	if m := Default().Rules.Mode; m != rules.QueueAll {
		t.Errorf("embedded default: mode %q, want queue-all", m)
	}
}

// TestErrorAt: an owner's error goes to the nearest key the file wrote,
// or to the file when it wrote none of the path.
func TestErrorAt(t *testing.T) {
	f, err := Parse("e.yaml", []byte("rules:\n  marks: {mask: 0xff0000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	bad := errors.New("bad value")
	for key, want := range map[string]string{
		"rules.marks.reject": "e.yaml:2:10: rules.marks.reject: bad value",
		"rules":              "e.yaml:2:3: rules: bad value",
		"xdp":                "e.yaml: xdp: bad value",
	} {
		l := f.ErrorAt(key, bad)
		if l.Error() != want || !errors.Is(l, bad) || !errors.Is(l, ErrInvalid) {
			t.Errorf("ErrorAt(%q) = %q, want %q wrapping the error", key, l, want)
		}
	}
	if got := f.ErrorAt("xdp", errors.New("xdp: config: two")).Error(); got != "e.yaml: xdp: config: two" {
		t.Errorf("an error naming the key already: %q", got)
	}
}
