package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	stampedOnce sync.Once
	stampedBin  string
	stampedErr  error
)

// stamped builds qguard the way `make build` does, with a known version and
// commit, once per test run.
func stamped(t *testing.T) string {
	t.Helper()
	stampedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "qguard-cmd-")
		if err != nil {
			stampedErr = err
			return
		}
		stampedBin = filepath.Join(dir, "qguard")
		ld := "-X github.com/qguard/qguard/internal/service.version=v9.8.7-3-gabcdef0" +
			" -X github.com/qguard/qguard/internal/service.commit=abcdef0123456789abcdef0123456789abcdef01-dirty"
		out, err := exec.Command("go", "build", "-ldflags", ld, "-o", stampedBin, ".").CombinedOutput()
		if err != nil {
			stampedErr = errors.New("build: " + err.Error() + "\n" + string(out))
		}
	})
	if stampedErr != nil {
		t.Fatal(stampedErr)
	}
	return stampedBin
}

func TestMain(m *testing.M) {
	setup()
	code := m.Run()
	if stampedBin != "" {
		os.RemoveAll(filepath.Dir(stampedBin))
	}
	os.Exit(code)
}

// runBin runs the stamped binary: stdout, stderr, exit status.
func runBin(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	c := exec.Command(stamped(t), args...)
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), c.ProcessState.ExitCode()
}

func TestVersionStamped(t *testing.T) {
	want := "qguard v9.8.7-3-gabcdef0\ncommit abcdef0123456789abcdef0123456789abcdef01+dirty\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, errs, code := runBin(t, args...)
		if code != 0 || !strings.HasPrefix(out, want) || errs != "" {
			t.Errorf("qguard %v: exit %d, stdout %q, stderr %q; want %q...", args, code, out, errs, want)
		}
	}
	out, _, _ := runBin(t, "version", "--json")
	var b struct {
		Version, Commit string
		Modified        bool
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil || b.Version != "v9.8.7-3-gabcdef0" ||
		b.Commit != "abcdef0123456789abcdef0123456789abcdef01" || !b.Modified {
		t.Errorf("version --json: %q (%v)", out, err)
	}
}

// TestUsageErrors: wrong command lines exit 2 and name the program once.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "qguard: unknown flag: --bogus (see 'qguard --help')\n"},
		{[]string{"run", "--bogus"}, "qguard: run: unknown flag: --bogus (see 'qguard run --help')\n"},
		{[]string{"rules", "show", "--bogus"}, "qguard: rules show: unknown flag: --bogus (see 'qguard rules show --help')\n"},
		{[]string{"check"}, "qguard: check: no FILE given: name the configuration file(s) to validate, e.g. qguard check /etc/qguard/qguard.yaml\n"},
		{[]string{"nope"}, "qguard: unknown command \"nope\" for \"qguard\"\n"},
	} {
		out, errs, code := runBin(t, tc.args...)
		if code != 2 || errs != tc.want || out != "" {
			t.Errorf("qguard %v: exit %d, stderr %q, stdout %q; want exit 2, %q", tc.args, code, errs, out, tc.want)
		}
	}
}

// TestStartupErrorJSON: with --log-format json a start-up failure is one
// JSON log record, like everything else the daemon writes.
func TestStartupErrorJSON(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	_, errs, code := runBin(t, "run", "--log-format", "json", "--config", missing)
	var rec map[string]any
	if code != 1 || strings.Count(errs, "\n") != 1 || json.Unmarshal([]byte(errs), &rec) != nil {
		t.Fatalf("exit %d, stderr %q: want exit 1 and one JSON record", code, errs)
	}
	if rec["level"] != "ERROR" || !strings.Contains(rec["msg"].(string), missing) || rec["exit_status"] != 1.0 {
		t.Errorf("record %v", rec)
	}
	// log.format: json in the file, failing after the logger is set up.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "json.yaml")
	os.WriteFile(cfg, []byte("log:\n  format: json\n"), 0o600)
	_, errs, code = runBin(t, "run", "--config", cfg, "--control", filepath.Join(dir, "c.sock"), "--metrics", "not-an-address")
	rec = nil
	if code != 1 || strings.Count(errs, "\n") != 1 || json.Unmarshal([]byte(errs), &rec) != nil ||
		rec["level"] != "ERROR" || !strings.Contains(rec["msg"].(string), "not-an-address") {
		t.Errorf("log.format json: exit %d, stderr %q: want one JSON error record", code, errs)
	}
	// Text stays the plain one-line message.
	_, errs, code = runBin(t, "run", "--config", missing)
	if code != 1 || !strings.HasPrefix(errs, "qguard: ") || strings.Count(errs, "\n") != 1 {
		t.Errorf("text: exit %d, stderr %q", code, errs)
	}
}

// TestFlagCompletion asks the completion back end what the shells ask it.
func TestFlagCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"run", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"bench", "--modes", "kernel,c-nfq-p"}, []string{"kernel,c-nfq-perpkt"}},
		{[]string{"bench", "--generator", ""}, []string{"packet", "udp"}},
	} {
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(append([]string{"__complete"}, tc.args...))
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		got := lines[:len(lines)-1] // the last line is the directive
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("complete %v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestCompletionModesSkipsGiven(t *testing.T) {
	got, _ := completeModes(nil, nil, "kernel,")
	for _, g := range got {
		if g == "kernel,kernel" {
			t.Errorf("offers a mode already given: %q", got)
		}
	}
	if len(got) < 10 {
		t.Errorf("too few modes offered: %q", got)
	}
}

// TestManPages: one page per command, the help's sections become the
// page's, and man renders them.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if _, errs, code := runBin(t, "gen-man", dir); code != 0 {
		t.Fatalf("gen-man: exit %d: %s", code, errs)
	}
	for _, name := range []string{"qguard", "qguard-run", "qguard-check", "qguard-rules-show", "qguard-status", "qguard-reload", "qguard-version", "qguard-test", "qguard-bench"} {
		if _, err := os.Stat(filepath.Join(dir, name+".8")); err != nil {
			t.Errorf("no page for %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "qguard-gen-man.8")); err == nil {
		t.Error("the hidden gen-man command got a page")
	}
	page, err := os.ReadFile(filepath.Join(dir, "qguard-run.8"))
	if err != nil {
		t.Fatal(err)
	}
	p := string(page)
	for _, want := range []string{`.TH "QGUARD" "8"`, "qguard v9.8.7-3-gabcdef0", ".SH SIGNALS", ".SH EXIT STATUS", ".SH FILES", "SIGHUP", `\fB--log-format\fP`} {
		if !strings.Contains(p, want) {
			t.Errorf("qguard-run.8 lacks %q", want)
		}
	}
	if top, err := os.ReadFile(filepath.Join(dir, "qguard.8")); err != nil || !strings.Contains(string(top), `\fB--version\fP`) {
		t.Errorf("qguard.8 lacks --version (%v)", err)
	}
	if n := strings.Count(p, ".SH NAME"); n != 1 {
		t.Errorf("qguard-run.8 has %d NAME sections", n)
	}
	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man is not installed: pages not rendered")
	}
	c := exec.Command(man, "-l", filepath.Join(dir, "qguard-run.8"))
	c.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80")
	out, err := c.Output()
	if err != nil {
		t.Fatalf("man -l: %v", err)
	}
	for _, want := range []string{"qguard-run - run the inline firewall daemon", "SIGNALS", "graceful stop"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered page lacks %q:\n%s", want, out)
		}
	}
}
