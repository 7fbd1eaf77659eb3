package ruletest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodFile = `# a comment
policy:
  default: accept
  rules:
    - name: block-telnet
      match: {proto: tcp, dport: [23]}
      action: reject
topology:
  client_addrs: [198.18.1.10]
timeout: 250ms
cases:
  - name: telnet
    send: {tcp: {port: 23}}
    expect: rejected
    rule: block-telnet
  - name: v6 dns
    send: {dns: {name: www.example, type: AAAA, over: tcp}}
    family: 6
    expect: delivered
    metrics: {hits.(default): ">=1", packets: 4}
  - name: extra source
    send: ping
    from: 2001:db8:1::99
    expect: dropped
  - name: marked
    send: {http: {host: api.example, path: /x}}
    expect: modified
    mark: 0x42
  - name: local
    send: {udp: {port: 9, data: "\x00\x01"}}
    from: firewall
    uid: 1000
    socket_mark: 7
    expect: delivered
`

func TestParseGood(t *testing.T) {
	f, err := Parse("good.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) != 5 || f.Timeout.Milliseconds() != 250 || !f.Parallel {
		t.Fatalf("parsed %+v", f)
	}
	c := f.Cases
	if c[0].Send.Kind != KindTCP || c[0].Send.Port != 23 || c[0].Expect != Rejected || c[0].Rule != "block-telnet" || c[0].Family != 4 {
		t.Errorf("case 0: %+v", c[0])
	}
	if c[1].Send.Kind != KindDNS || !c[1].Send.OverTCP || c[1].Send.QType != 28 || c[1].Family != 6 || len(c[1].Metrics) != 2 {
		t.Errorf("case 1: %+v", c[1])
	}
	if c[2].Family != 6 || c[2].Send.Kind != KindICMP || c[2].From.String() != "2001:db8:1::99" {
		t.Errorf("case 2: %+v", c[2])
	}
	if !c[3].HasMark || c[3].Mark != 0x42 || c[3].Send.Host != "api.example" || c[3].Send.Port != 80 {
		t.Errorf("case 3: %+v", c[3])
	}
	if !c[4].FromFirewall || *c[4].UID != 1000 || c[4].SocketMark != 7 || string(c[4].Send.Data) != "\x00\x01" {
		t.Errorf("case 4: %+v", c[4])
	}
	if len(f.ExtraAddrs) != 2 {
		t.Errorf("extra addresses: %v", f.ExtraAddrs)
	}
	// The config package reads the policy section of the test file itself
	// (and nothing else of it: cases, topology and timeout are no config keys).
	cfg, err := loadConfig(f)
	if err != nil || len(cfg.Policy.Rules) != 1 || cfg.Policy.Rules[0].Name != "block-telnet" || f.ConfigName != f.Path {
		t.Errorf("inline policy: %v %+v", err, cfg)
	}
}

// TestParseFlowStyle: the inline sections may be written in any YAML
// style; config errors in them keep the test file's lines and columns.
func TestParseFlowStyle(t *testing.T) {
	f, err := Parse("flow.yaml", []byte("{policy: {default: drop}, cases: [{name: a, send: ping, expect: dropped}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := loadConfig(f); err != nil || cfg.Policy.Default.String() != "drop" {
		t.Errorf("flow-style policy: %v", err)
	}
	_, err = Parse("flow.yaml", []byte("cases: [{name: a, send: ping, expect: dropped}]\npolicy: {default: maybe}\n"))
	if err == nil || !strings.Contains(err.Error(), "flow.yaml:2:19: policy: ") {
		t.Errorf("bad flow-style policy: %v, want an error at flow.yaml:2:19", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"syntax", "policy: [\n", "bad.yaml:1:1: invalid YAML"},
		{"not a mapping", "- a\n", "bad.yaml:1:1: expected a mapping"},
		{"unknown key", "policy: {}\ncase: []\n", "bad.yaml:2:1: unknown key \"case\""},
		{"no policy", "cases:\n  - {name: a, send: ping, expect: delivered}\n", "bad.yaml:1:1: missing policy"},
		{"no cases", "policy:\n  default: accept\n", "missing cases"},
		{"bad expect", "policy: {}\ncases:\n  - name: a\n    send: ping\n    expect: passed\n", "bad.yaml:5:13: expect: expected delivered, dropped, rejected or modified, found \"passed\""},
		{"bad send", "policy: {}\ncases:\n  - name: a\n    send: {smtp: {port: 25}}\n    expect: dropped\n", "bad.yaml:4:12: send: unknown kind \"smtp\""},
		{"missing port", "policy: {}\ncases:\n  - name: a\n    send: {tcp: {}}\n    expect: dropped\n", "bad.yaml:4:12: send.tcp: missing port"},
		{"bad port", "policy: {}\ncases:\n  - name: a\n    send: {udp: {port: 70000}}\n    expect: dropped\n", "bad.yaml:4:24: send.udp.port: expected a number from 0 to 65535"},
		{"bad from", "policy: {}\ncases:\n  - name: a\n    send: ping\n    from: 10.0.0.1\n    expect: dropped\n", "bad.yaml:5:11: from: 10.0.0.1 is outside the client subnets"},
		{"family clash", "policy: {}\ncases:\n  - name: a\n    send: ping\n    from: 198.18.1.9\n    family: 6\n    expect: dropped\n", "bad.yaml:5:11: from: 198.18.1.9 is IPv4 but family is 6"},
		{"dup name", "policy: {}\ncases:\n  - {name: a, send: ping, expect: dropped}\n  - {name: a, send: ping, expect: dropped}\n", "bad.yaml:4:5: case \"a\": the name is already used at line 3"},
		{"uid not local", "policy: {}\ncases:\n  - name: a\n    send: ping\n    uid: 5\n    expect: dropped\n", "bad.yaml:5:5: uid: only with from: firewall"},
		{"modified icmp", "policy: {}\ncases:\n  - name: a\n    send: ping\n    expect: modified\n", "bad.yaml:5:13: expect: modified needs traffic with ports"},
		{"bad metric", "policy: {}\ncases:\n  - name: a\n    send: ping\n    expect: dropped\n    metrics: {hits: lots}\n", "bad.yaml:6:21: metrics.hits: expected a delta"},
		{"bad dns type", "policy: {}\ncases:\n  - name: a\n    send: {dns: {name: x, type: BOGUS}}\n    expect: dropped\n", "bad.yaml:4:33: send.dns.type: expected A, AAAA"},
		{"port clash", "policy: {}\ncases:\n  - {name: a, send: {tls: {sni: x, port: 80}}, expect: dropped}\n  - {name: b, send: {http: {host: x}}, expect: dropped}\n", "bad.yaml:4:5: case \"b\": tcp port 80 already serves tls for case \"a\""},
		{"both policies", "policy: {}\npolicy_file: x.yaml\ncases:\n  - {name: a, send: ping, expect: dropped}\n", "bad.yaml:2:14: policy_file and an inline"},
		{"missing policy file", "policy_file: nope.yaml\ncases:\n  - {name: a, send: ping, expect: dropped}\n", "bad.yaml:1:14: policy_file: open"},
		{"bad timeout", "policy: {}\ntimeout: soon\ncases:\n  - {name: a, send: ping, expect: dropped}\n", "bad.yaml:2:10: timeout: expected a duration"},
		{"bad iface", "policy:\n  rules:\n    - name: r\n      match: {in_iface: [eth9]}\n      action: drop\ncases:\n  - {name: a, send: ping, expect: dropped}\n", "bad.yaml:4:15: policy: rule \"r\" (#0): in_iface: interface not found: \"eth9\": not in the test topology"},
		{"together alone", "policy: {}\ncases:\n  - name: a\n    send: {dns: {name: x, together: true}}\n    expect: dropped\n", "send.dns.together: needs first"},
		{"bad records", "policy: {}\ncases:\n  - name: a\n    send: {tls: {sni: x, records: 99}}\n    expect: dropped\n", "send.tls.records: expected a number from 1 to 16"},
		{"bad split", "policy: {}\ncases:\n  - name: a\n    send: {dns: {name: x, split: maybe}}\n    expect: dropped\n", "send.dns.split: expected true or false"},
		{"first on tls", "policy: {}\ncases:\n  - name: a\n    send: {tls: {sni: x, first: y}}\n    expect: dropped\n", "send.tls: unknown key \"first\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(t.TempDir(), "..", "bad.yaml"), []byte(tc.text))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadFile) {
				t.Errorf("error does not wrap ErrBadFile: %v", err)
			}
			msg := err.Error()
			if i := strings.Index(msg, "bad.yaml"); i >= 0 {
				msg = msg[i:]
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error\n%s\ndoes not contain\n%s", err, tc.want)
			}
		})
	}
}

func TestParseFuzzNoPanic(t *testing.T) {
	// Hostile shapes: every key with every kind of node.
	for _, v := range []string{"[]", "{}", "~", "1", "'x'", "[{}]", "{a: b}"} {
		for _, k := range []string{"policy_file", "topology", "timeout", "parallel", "cases"} {
			_, _ = Parse("x.yaml", []byte("policy: {}\n"+k+": "+v+"\n"))
		}
		for _, k := range []string{"name", "send", "from", "family", "expect", "rule", "mark", "metrics", "repeat", "uid"} {
			_, _ = Parse("x.yaml", []byte("policy: {}\ncases:\n  - {"+k+": "+v+"}\n"))
		}
		for _, k := range []string{"tcp", "udp", "icmp", "dns", "tls", "http"} {
			_, _ = Parse("x.yaml", []byte("policy: {}\ncases:\n  - {send: {"+k+": "+v+"}}\n"))
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse("fuzz.yaml", b)
	})
}

func TestPolicyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("policy:\n  default: drop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(filepath.Join(dir, "t.yaml"), []byte("policy_file: p.yaml\ncases:\n  - {name: a, send: ping, expect: dropped}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Config) != "policy:\n  default: drop\n" || f.ConfigName != filepath.Join(dir, "p.yaml") {
		t.Fatalf("config %q from %s", f.Config, f.ConfigName)
	}
}

// TestBadFixtures: the files in testdata/bad fail with file:line:column,
// policy errors included (reported through package config at the test
// file's own positions).
func TestBadFixtures(t *testing.T) {
	want := map[string]string{
		"testdata/bad/badcase.yaml":     `testdata/bad/badcase.yaml:6:13: expect: expected delivered, dropped, rejected or modified, found "deliverd"`,
		"testdata/bad/badpolicy.yaml":   `testdata/bad/badpolicy.yaml:6:15: policy: action: unknown action "explode"`,
		"testdata/bad/unknownrule.yaml": `testdata/bad/unknownrule.yaml:11:11: rule: the policy has no rule "block-telnt"`,
	}
	paths, err := CollectFiles([]string{"testdata/bad"})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(want) {
		t.Fatalf("found %v", paths)
	}
	_, err = ParseAll(paths)
	if err == nil {
		t.Fatal("no error")
	}
	for p, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error\n%v\nlacks %q", p, err, w)
		}
	}
	var pe *PosError
	if !errors.Is(err, ErrBadFile) || !errors.As(err, &pe) {
		t.Errorf("errors.Is/As fail on %v", err)
	}
}

func TestParseAddrDedup(t *testing.T) {
	f, err := Parse("x.yaml", []byte("policy: {}\ntopology: {client_addrs: [198.18.1.9, 198.18.1.9, 198.18.1.2]}\ncases:\n  - {name: a, send: ping, from: 198.18.1.9, expect: delivered}\n  - {name: b, send: ping, from: 198.18.1.2, expect: delivered}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.ExtraAddrs) != 1 {
		t.Fatalf("extra addresses %v", f.ExtraAddrs)
	}
}
