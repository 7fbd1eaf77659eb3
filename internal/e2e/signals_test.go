package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIntegrationStopTwoSignals: two stop signals delivered together are
// one request: the daemon stops cleanly (table removed, exit 0) instead of
// exiting at once with the table in place.
func TestIntegrationStopTwoSignals(t *testing.T) {
	top := newTopo(t, "qe2s")
	d := startDaemon(t, top, "")
	if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
		t.Fatalf("ping through the daemon: %v", err)
	}
	d.signal(syscall.SIGTERM)
	d.signal(syscall.SIGINT)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("exit: %v, want a clean stop\n%s", err, d.log.String())
	}
	if s := d.log.String(); !strings.Contains(s, `"msg":"stopped"`) || strings.Contains(s, "exiting now") {
		t.Errorf("not a clean stop:\n%s", s)
	}
	noTable(t, d.fw, "after two signals")
}

// TestIntegrationStopUnderTimeout: GNU timeout signals the daemon and then
// its own process group, so two SIGTERMs arrive together; the daemon stops
// cleanly and removes its table.
func TestIntegrationStopUnderTimeout(t *testing.T) {
	top := newTopo(t, "qeto")
	if _, err := exec.LookPath("timeout"); err != nil {
		t.Skip("no GNU timeout")
	}
	dir := t.TempDir()
	out, code := runFor(top.Firewall, 30*time.Second, "timeout", "-s", "TERM", "2", qguardBin, "run", "--log-format", "json",
		"--control", filepath.Join(dir, "c.sock"), "--metrics", "")
	// 124: timeout's "the command timed out", after the command exited 0.
	if code != 124 || !strings.Contains(out, `"msg":"stopped"`) || strings.Contains(out, "exiting now") {
		t.Errorf("under timeout: exit %d, want 124 after a clean stop:\n%s", code, out)
	}
	noTable(t, top.Firewall, "under timeout")
}

// TestIntegrationReloadFIFO: a reload whose prefix set file is a FIFO fails
// at once (the running policy stays) instead of hanging, and SIGTERM then
// stops cleanly.
func TestIntegrationReloadFIFO(t *testing.T) {
	top := newTopo(t, "qeff")
	d := startDaemon(t, top, "policy:\n  default: accept\n")
	fifo := filepath.Join(filepath.Dir(d.cfgPath), "set.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	d.writeConfig("policy:\n  default: accept\n  sets:\n    bad: {file: " + fifo + "}\n")
	if d.reload() {
		t.Fatalf("a FIFO as a prefix set file was accepted:\n%s", d.log.String())
	}
	if !strings.Contains(d.log.String(), "not a regular file (it is a FIFO)") {
		t.Errorf("the failed reload does not say why:\n%s", d.log.String())
	}
	if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
		t.Errorf("running policy lost after the failed reload: %v", err)
	}
	d.signal(syscall.SIGTERM)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	noTable(t, d.fw, "after SIGTERM")
}

// TestIntegrationStopDuringSlowReload: SIGTERM while a reload is compiling a
// large prefix set stops at once and cleanly; the reload is abandoned, not
// waited for.
func TestIntegrationStopDuringSlowReload(t *testing.T) {
	top := newTopo(t, "qesr")
	d := startDaemon(t, top, "policy:\n  default: accept\n")
	set := filepath.Join(filepath.Dir(d.cfgPath), "big.txt")
	var b strings.Builder
	for i := range 1 << 20 { // about 2 s of loading and compiling on an idle machine, more on a busy one
		fmt.Fprintf(&b, "10.%d.%d.%d\n", i>>16&255, i>>8&255, i&255)
	}
	if err := os.WriteFile(set, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	d.writeConfig("policy:\n  default: accept\n  sets:\n    big: {file: " + set + "}\n  rules:\n" +
		"    - name: big\n      match: {src: \"@big\"}\n      action: drop\n")
	d.signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.log.String(), `"msg":"SIGHUP: reloading"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload started:\n%s", d.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	d.signal(syscall.SIGTERM)
	if err := d.wait(20 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.log.String())
	}
	took := time.Since(t0)
	s := d.log.String()
	if strings.Contains(s, `"msg":"reloaded"`) || !strings.Contains(s, "the reload is abandoned") || !strings.Contains(s, `"msg":"stopped"`) {
		t.Errorf("the stop waited for the reload (%v):\n%s", took, s)
	}
	noTable(t, d.fw, "after SIGTERM during a reload")
	t.Logf("stopped %v after SIGTERM during the reload", took.Round(time.Millisecond))
}
