package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/engine"
)

func TestParseQueueRange(t *testing.T) {
	for _, tc := range []struct {
		in         string
		num, count uint16
		err        string
	}{
		{"", 0, 0, ""},
		{"0", 0, 1, ""},
		{"5", 5, 1, ""},
		{"2:5", 2, 4, ""},
		{"65535", 65535, 1, ""},
		{"5:2", 0, 0, "ends before"},
		{"x", 0, 0, "not a queue number"},
		{"1:y", 0, 0, "not a queue number"},
		{"65536", 0, 0, "not a queue number"},
		{"-1", 0, 0, "not a queue number"},
		{"0:4000", 0, 0, "more than 1024"},
	} {
		r, err := parseQueueRange(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if tc.in == "" {
			if r != nil {
				t.Errorf("empty: %+v", r)
			}
			continue
		}
		if r.Num != tc.num || r.Count != tc.count {
			t.Errorf("%q: %+v, want %d:%d", tc.in, r, tc.num, tc.count)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	l, err := newLogger(&b, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	if s := b.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"msg":"shown"`) {
		t.Errorf("json logger output %q", s)
	}
	if _, err := newLogger(&b, "xml", ""); err == nil || !strings.Contains(err.Error(), "expected one of: text, json") {
		t.Errorf("bad format: %v", err)
	}
	if _, err := newLogger(&b, "text", "loud"); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("bad level: %v", err)
	}
}

// TestHelpTexts: every daemon subcommand has a man-page-like help.
func TestHelpTexts(t *testing.T) {
	for _, name := range []string{"run", "reload", "status", "check", "version"} {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Fatalf("subcommand %s not registered: %v", name, err)
		}
		for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS"} {
			if !strings.Contains(c.Long, section) {
				t.Errorf("qguard %s --help lacks %s", name, section)
			}
		}
	}
}

func TestStatusUnreachable(t *testing.T) {
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"status", "--control", t.TempDir() + "/none.sock"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "is qguard running") {
		t.Fatalf("status without daemon: %v", err)
	}
}

func TestPrintStatus(t *testing.T) {
	s := &engine.Stats{
		Version: "v1", Started: time.Now().Add(-time.Minute), RulesInstalled: true,
		Queues: []engine.QueueStats{{Queue: 3, Packets: 1234, Accepted: 1000, Dropped: 234,
			Latency: engine.Histogram{Count: 10, Bounds: engine.LatencyBuckets, Buckets: []uint64{0, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}},
		Rules:   []engine.RuleStats{{Name: "no-telnet", Action: "reject", Hits: 7}},
		Default: engine.RuleStats{Name: engine.CounterDefault, Action: "accept", Hits: 1000},
		Reloads: 2, Failures: 1, LastReloadError: "policy.rules[0]: bad",
	}
	var b bytes.Buffer
	printStatus(&b, s)
	for _, want := range []string{"1234", "no-telnet", "reject", "7", "(default)", "reloads: 2 (1 failed)", "policy.rules[0]: bad", "<=2.5µs", "<=5µs"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/good.yaml"
	bad := dir + "/bad.yaml"
	os.WriteFile(good, []byte("policy:\n  default: drop\n"), 0o600)
	os.WriteFile(bad, []byte("queue:\n  count: 0\npolicy:\n  default: maybe\n"), 0o600)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"check"}, args...))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run(good)
	if err != nil || out != good+": ok\n" {
		t.Errorf("good file: %v %q", err, out)
	}
	out, err = run(good, bad)
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("bad file: exit %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], bad+":2:10: ") || !strings.HasPrefix(lines[2], bad+":4:12: ") {
		t.Errorf("want file:line:col lines for both problems:\n%s", out)
	}
	if _, err := run(dir + "/missing.yaml"); err == nil {
		t.Error("missing file passed")
	}
}
