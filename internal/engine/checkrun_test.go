package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/yamlpos"
	"github.com/qguard/qguard/proto"
)

// runRefusal is what `qguard run --config path` says about the file before
// it touches the kernel: config.Load, then New (offline: the same settings,
// validation and compiled policy; nothing opened). nil means run accepts
// the file.
func runRefusal(t *testing.T, path string) error {
	t.Helper()
	f, err := config.Load(path)
	if err != nil {
		return err
	}
	e, err := New(f, &Options{Offline: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	return e.Close()
}

// agree fails the test unless `qguard check` (CheckFile) and run accept
// the file at path alike, and every problem run names is one check
// reports, word for word and at the same place. It returns check's error.
func agree(t *testing.T, path string) error {
	t.Helper()
	checkErr, runErr := CheckFile(path), runRefusal(t, path)
	switch {
	case checkErr == nil && runErr == nil:
		return nil
	case checkErr == nil:
		t.Errorf("%s: qguard check accepts it, qguard run refuses: %v", path, runErr)
	case runErr == nil:
		t.Errorf("%s: qguard run accepts it, qguard check refuses: %v", path, checkErr)
	default:
		for _, l := range problems(runErr) {
			if !slices.Contains(problems(checkErr), l) {
				t.Errorf("%s: run names a problem check does not:\ncheck: %v\nrun:   %v", path, checkErr, runErr)
				break
			}
		}
	}
	return checkErr
}

// problems are the file:line:col lines of err, without the step New names
// ("compile policy: invalid configuration: ").
func problems(err error) []string {
	var l *config.ErrorList
	if !errors.As(err, &l) {
		return []string{err.Error()}
	}
	out := make([]string, len(l.Errs))
	for i, e := range l.Errs {
		out[i] = e.Error()
	}
	return out
}

// TestCheckRunAgreeExamples walks every example configuration, the
// packaged one and the embedded default through both.
func TestCheckRunAgreeExamples(t *testing.T) {
	files := append(testutil.ExampleConfigs(t), "../../packaging/qguard.yaml", "../../config/default.yaml")
	for _, p := range files {
		if err := agree(t, p); err != nil {
			t.Errorf("%s: example refused: %v", p, err)
		}
	}
}

// documentedKey is one key of examples/qguard.yaml, the reference that
// documents every key with its default.
type documentedKey struct {
	path  []string   // section, key (and subkey: rules.marks.mask)
	value *yaml.Node // the documented value
}

func (k documentedKey) name() string { return strings.Join(k.path, ".") }

// file writes a configuration that sets only k, to v, and says where v is.
func (k documentedKey) file(v string) (body string, line, col int) {
	var b strings.Builder
	for i, p := range k.path {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i < len(k.path)-1 {
			b.WriteString("\n")
		}
	}
	b.WriteString(" " + v + "\n")
	last := len(k.path) - 1
	return b.String(), len(k.path), 2*last + len(k.path[last]) + 3
}

// documentedKeys walks the reference's sections down to their leaves (a
// non-empty mapping is walked into: rules.marks).
func documentedKeys(t *testing.T) []documentedKey {
	t.Helper()
	data, err := os.ReadFile("../../examples/qguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root, probs := yamlpos.Decode(data)
	if len(probs) > 0 || root == nil {
		t.Fatalf("examples/qguard.yaml: %v", probs)
	}
	var out []documentedKey
	var walk func(path []string, n *yaml.Node)
	walk = func(path []string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode || len(n.Content) == 0 || len(path) > 1 && path[0] == "policy" {
			out = append(out, documentedKey{path: slices.Clone(path), value: n})
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(append(path, n.Content[i].Value), n.Content[i+1])
		}
	}
	walk(nil, root)
	if len(out) < 60 {
		t.Fatalf("found %d documented keys in examples/qguard.yaml, expected every key of every section", len(out))
	}
	return out
}

// flow writes n on one line (YAML flow style, no comments).
func flow(t *testing.T, n *yaml.Node) string {
	t.Helper()
	var strip func(n *yaml.Node) *yaml.Node
	strip = func(n *yaml.Node) *yaml.Node {
		c := *n
		c.HeadComment, c.LineComment, c.FootComment = "", "", ""
		if c.Kind != yaml.ScalarNode {
			c.Style = yaml.FlowStyle
		}
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = strip(k)
		}
		return &c
	}
	b, err := yaml.Marshal(strip(n))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// enums are the keys that take one of a few names: each is also tried with
// every name and with a near miss, which must be refused naming the key,
// the place and every accepted name.
var enums = map[string]struct {
	names []string
	miss  string
}{
	"queue.verdict_mode":    {[]string{"batch", "vectored", "per-packet"}, "perpacket"},
	"queue.default_verdict": {[]string{"accept", "drop"}, "reject"},
	"rules.mode":            {[]string{"kernel-first", "queue-all"}, "kernel-only"},
	"xdp.mode":              {[]string{"auto", "native", "generic"}, "skb"},
	"log.format":            {[]string{"text", "json"}, "logfmt"},
	"log.level":             {[]string{"debug", "info", "warn", "error"}, "verbose"},
	"policy.default":        {[]string{"accept", "drop", "reject"}, "alert"},
	"policy.invalid":        {[]string{"accept", "drop", "reject"}, "allow"},
	"policy.l7_undecided":   {[]string{"accept", "drop", "reject"}, "pass"},
}

// wrongShape are the keys whose wrong shape is not the default one: a
// mapping for a scalar or a list, a list for a mapping.
var wrongShape = map[string]string{
	"policy.rules": "{bad: 1}",
	"policy.sets":  "[1]",
}

// TestCheckRunAgreeDocumentedKeys writes every key examples/qguard.yaml
// documents into a file of its own: with its documented value both accept
// it; with a value of the wrong shape, and for the keys that take names with
// a near miss, both refuse it with the same message, which names the key,
// the line and column of the value and (for names) every accepted one.
func TestCheckRunAgreeDocumentedKeys(t *testing.T) {
	dir := t.TempDir()
	n := 0
	write := func(body string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("k%03d.yaml", n))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	seenEnums := map[string]bool{}
	for _, k := range documentedKeys(t) {
		key := k.name()
		body, _, _ := k.file(flow(t, k.value))
		if err := agree(t, write(body)); err != nil {
			t.Errorf("%s: the documented value is refused:\n%s%v", key, body, err)
		}
		bad, ok := wrongShape[key]
		if !ok {
			bad = "{bad: 1}"
			if k.value.Kind == yaml.MappingNode {
				bad = "[1]"
			}
		}
		refused(t, write, k, bad, key)
		if e, ok := enums[key]; ok {
			seenEnums[key] = true
			for _, name := range e.names {
				body, _, _ := k.file(name)
				if err := agree(t, write(body)); err != nil {
					t.Errorf("%s: %s is refused: %v", key, name, err)
				}
			}
			msg := refused(t, write, k, e.miss, key)
			for _, name := range e.names {
				if !strings.Contains(msg, name) {
					t.Errorf("%s %s: %q does not name %s, an accepted value", key, e.miss, msg, name)
				}
			}
		}
	}
	for key := range enums {
		if !seenEnums[key] {
			t.Errorf("%s: not documented in examples/qguard.yaml", key)
		}
	}
}

// TestEveryKeyDocumented: the keys each section accepts (as the message
// about an unknown key lists them) are the keys examples/qguard.yaml
// documents, so the walk above misses none (a policy rule's match keys and
// options have a file each in examples/policies).
func TestEveryKeyDocumented(t *testing.T) {
	documented := map[string][]string{} // section path: its keys
	for _, k := range documentedKeys(t) {
		for i := 1; i <= len(k.path); i++ {
			parent := strings.Join(k.path[:i-1], ".")
			if !slices.Contains(documented[parent], k.path[i-1]) {
				documented[parent] = append(documented[parent], k.path[i-1])
			}
		}
	}
	for section, keys := range documented {
		path := []string{}
		if section != "" {
			path = strings.Split(section, ".")
		}
		body, _, _ := documentedKey{path: append(path, "no_such_key")}.file("1")
		_, err := config.Parse("keys.yaml", []byte(body))
		_, list, ok := strings.Cut(fmt.Sprint(err), "; expected one of: ")
		if !ok {
			t.Errorf("section %q: no list of keys in %v", section, err)
			continue
		}
		accepted := strings.Split(strings.SplitN(list, "\n", 2)[0], ", ")
		slices.Sort(accepted)
		slices.Sort(keys)
		if !slices.Equal(accepted, keys) {
			t.Errorf("section %q accepts %v; examples/qguard.yaml documents %v", section, accepted, keys)
		}
	}
}

// refused checks that both refuse k set to v, at v's place, naming the
// key; it returns the message.
func refused(t *testing.T, write func(string) string, k documentedKey, v, key string) string {
	t.Helper()
	body, line, col := k.file(v)
	path := write(body)
	err := agree(t, path)
	if err == nil {
		t.Errorf("%s: %s is accepted:\n%s", key, v, body)
		return ""
	}
	msg := err.Error()
	if want := fmt.Sprintf("%s:%d:%d: ", path, line, col); !strings.HasPrefix(msg, want) || !strings.Contains(msg, k.path[len(k.path)-1]) {
		t.Errorf("%s: %s: %q, want it at %s naming the key", key, v, msg, want)
	}
	return msg
}

// TestCheckRunAgreeProtocols writes every protocol name (and a few that
// are not) into rules.protocols, with and without ports, and into a policy
// rule's proto, and walks each file through both. rules: {protocols:
// [dccp]} is the case that once passed check and failed run.
func TestCheckRunAgreeProtocols(t *testing.T) {
	dir := t.TempDir()
	names := append(proto.Names(), "ipv6-icmp", "TCP", "47", "ipv6", "")
	cases := map[string]bool{} // file body: must be accepted
	for _, n := range names {
		_, known := proto.Number(n)
		cases["rules: {protocols: ["+quote(n)+"]}\n"] = known
		cases["rules: {protocols: ["+quote(n)+"], dports: [80]}\n"] = known && hasPorts(n)
		cases["policy:\n  rules:\n    - {name: r, match: {proto: ["+quote(n)+"]}, action: drop}\n"] = known
	}
	cases["rules: {protocols: [dccp]}\n"] = true
	cases["policy:\n  rules:\n    - {name: r, match: {proto: [47, 300]}, action: drop}\n"] = false
	cases["policy:\n  rules:\n    - {name: r, match: {proto: [47, 0]}, action: drop}\n"] = true
	// Refused by the compiler, not the decoder: the messages must match.
	cases["policy:\n  rules:\n    - {name: r, match: {dst: [\"@nosuchset\"]}, action: drop}\n"] = false
	cases["policy:\n  rules:\n    - {name: r, match: {dst: [\"@a\"]}, action: drop}\n    - {name: s, match: {src: [\"@b\"]}, action: drop}\n"] = false
	i := 0
	for body, want := range cases {
		i++
		path := filepath.Join(dir, fmt.Sprintf("p%03d.yaml", i))
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := agree(t, path) == nil; got != want {
			t.Errorf("%q: accepted = %v, want %v", body, got, want)
		}
	}
}

// TestCheckRunAgreeOwnerChecks: what the owning packages refuse after
// decoding (rules.Config, names.Config, xdp.Config) both refuse alike, at
// the key named.
func TestCheckRunAgreeOwnerChecks(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct{ body, want string }{
		{"rules:\n  marks: {mask: 0xff0000, accept_flow: 0x1, drop_flow: 0x20000, reject: 0x30000}\n",
			"2:40: rules.marks.accept_flow: invalid rules configuration: marks.accept_flow 0x1 must be non-zero and inside mask 0xff0000"},
		{"rules:\n  marks: {mask: 0xff0000, accept_flow: 0x10000, drop_flow: 0x20000, reject: 0x20000}\n",
			"2:77: rules.marks.reject: invalid rules configuration: marks.drop_flow and marks.reject are both 0x20000"},
		{"rules:\n  marks: {mask: 0xff}\n",
			"2:10: rules.marks.accept_flow: invalid rules configuration: marks.accept_flow 0x10000 must be non-zero and inside mask 0xff"},
		{"rules: {hooks: [{hook: forwrd}]}\n",
			`1:24: hook: unknown value "forwrd"; expected one of: prerouting, input, forward, output, postrouting`},
		{"rules: {hooks: [{hook: input}, {hook: input, priority: 5}]}\n",
			`1:16: rules.hooks: invalid rules configuration: hooks[1]: hook "input" listed twice`},
		{"rules: {protocols: [icmp], dports: [80]}\n",
			"1:20: rules.protocols: invalid rules configuration: ports given but none of protocols [icmp] has ports (tcp, udp, sctp, udplite)"},
		{"names:\n  min_ttl: 2h\n  max_ttl: 1h\n",
			"2:3: names: invalid names configuration: min_ttl 2h0m0s is above max_ttl 1h0m0s"},
		{"xdp: {interfaces: [eth0, eth0]}\n",
			`1:6: xdp: config: Interfaces[1] "eth0" listed twice: invalid argument`},
	} {
		path := filepath.Join(dir, fmt.Sprintf("o%d.yaml", i))
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := agree(t, path); err == nil || err.Error() != path+":"+c.want {
			t.Errorf("%q: %v, want %s:%s", c.body, err, path, c.want)
		}
	}
}

func quote(s string) string { return `"` + s + `"` }

// hasPorts: the protocols the rules match ports of.
func hasPorts(name string) bool {
	switch name {
	case "tcp", "udp", "sctp", "udplite":
		return true
	}
	return false
}
