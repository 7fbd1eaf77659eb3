package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationStartFailures: a failed start-up says why, exits 1 and
// leaves nothing installed.
func TestIntegrationStartFailures(t *testing.T) {
	top := newTopo(t, "qef")
	dir := t.TempDir()
	run := func(args ...string) (string, int) {
		return runFor(top.Firewall, 10*time.Second, append([]string{qguardBin, "run", "--log-format", "json"}, args...)...)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("policy:\n  default: accept\n  rules:\n    - name: x\n      match: {dport: [\"99999\"]}\n      action: drop\n"), 0o600)
	out, code := run("--config", bad, "--control", filepath.Join(dir, "c1.sock"))
	if code != 1 || !strings.Contains(out, "bad.yaml:5") {
		t.Errorf("bad config: exit %d, want 1 and bad.yaml:5 in the message:\n%s", code, out)
	}
	noTable(t, top.Firewall, "bad config")

	out, code = run("--queue", "9:11", "--metrics", "not-an-address", "--control", filepath.Join(dir, "c2.sock"))
	if code != 1 || !strings.Contains(out, "metrics") {
		t.Errorf("bad metrics address: exit %d:\n%s", code, out)
	}
	noTable(t, top.Firewall, "bad metrics address")

	// A second daemon on a queue that is taken fails before touching the
	// first one's table.
	d := startDaemon(t, top, "", "--queue", "4")
	out, code = run("--queue", "4", "--control", filepath.Join(dir, "c3.sock"), "--metrics", "")
	if code != 1 || !strings.Contains(out, "already bound") {
		t.Errorf("taken queue: exit %d, want 1 and \"already bound\":\n%s", code, out)
	}
	if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
		t.Errorf("first daemon disturbed by the failed second one: %v", err)
	}
	if st := d.status(); st.Queues[0].Packets == 0 {
		t.Errorf("first daemon no longer sees traffic: %+v", st.Queues)
	}
	// And a second daemon on the same control socket is refused too.
	out, code = run("--queue", "5", "--control", d.control, "--metrics", "")
	if code != 1 || !strings.Contains(out, "another qguard is running") {
		t.Errorf("taken control socket: exit %d:\n%s", code, out)
	}
	d.signal(15)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	noTable(t, top.Firewall, "after SIGTERM")
}
