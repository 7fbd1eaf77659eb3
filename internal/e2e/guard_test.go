package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/engine"
)

// guardPolicy queues everything (mode queue-all): the test checks that
// steering works again after a re-install.
const guardPolicy = `
metrics: {listen: "127.0.0.1:9477"}
rules: {mode: queue-all}
policy:
  default: accept
  rules:
    - name: no-alt-http
      match: {proto: tcp, dport: [8081]}
      action: reject
`

// TestIntegrationGuardTable: the daemon puts its table back within a second
// after `nft flush ruleset`, a deleted rule and `qguard rules flush
// --force`, says so at WARN and counts each once; its own reloads are not
// counted; a second daemon for the same table is refused with the holder
// named and leaves the first one's table alone; `qguard rules flush`
// refuses while the daemon runs.
func TestIntegrationGuardTable(t *testing.T) {
	top := newTopo(t, "qeg")
	d := startDaemon(t, top, guardPolicy)
	fw := top.Firewall
	pid := d.cmd.Process.Pid

	// waitTampered waits up to a second for the table to be back and the
	// n-th foreign change to be counted, and returns the status.
	waitTampered := func(what string, n uint64) *engine.Stats {
		t.Helper()
		start := time.Now()
		for {
			out, err := fw.Output("nft", "list", "table", "inet", "qguard")
			back := err == nil && strings.Contains(out, "steer to queue")
			var s *engine.Stats
			if back {
				s = d.status()
				if s.RulesTampered == n && s.RulesIntact {
					t.Logf("%s: table back after %v", what, time.Since(start).Round(time.Millisecond))
					return s
				}
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s: table not back within 1s (back %v, status %+v)", what, back, s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	warns := func() int { return strings.Count(d.log.String(), "changed by someone else") }

	// Own reloads and block-set changes are not tampering.
	for range 3 {
		if !d.reload() {
			t.Fatalf("reload failed:\n%s", d.log.String())
		}
	}
	time.Sleep(300 * time.Millisecond)
	if s := d.status(); s.RulesTampered != 0 || !s.RulesIntact {
		t.Fatalf("own reloads counted as tampering: %+v", s)
	}

	if err := fw.Run("nft", "flush", "ruleset"); err != nil {
		t.Fatal(err)
	}
	s := waitTampered("nft flush ruleset", 1)
	if !strings.Contains(s.LastTamperChange, "table inet qguard deleted") || s.LastTamper.IsZero() {
		t.Errorf("last change %q at %v", s.LastTamperChange, s.LastTamper)
	}
	if !strings.Contains(d.log.String(), `"level":"WARN","msg":"nftables table changed by someone else, re-installing it"`) {
		t.Errorf("no WARN line:\n%s", d.log.String())
	}
	// The re-installed table steers again.
	before := s.Queues[0].Packets
	if err := ping(top.Client, top.ServerIP4.String(), 1); err != nil {
		t.Fatalf("ping after the re-install: %v", err)
	}
	if s := d.status(); s.Queues[0].Packets <= before {
		t.Errorf("ping not queued after the re-install: %d packets before, %d after", before, s.Queues[0].Packets)
	}

	// One rule deleted (in whichever chain holds it).
	deleteSteerRule(t, fw)
	s = waitTampered("rule deleted", 2)
	if !strings.Contains(s.LastTamperChange, `rule "steer to queue" deleted`) {
		t.Errorf("last change %q", s.LastTamperChange)
	}

	// A foreign rule added in front.
	if err := fw.Run("nft", "insert", "rule", "inet", "qguard", "forward", "accept"); err != nil {
		t.Fatal(err)
	}
	s = waitTampered("rule added", 3)
	if !strings.Contains(s.LastTamperChange, `added`) {
		t.Errorf("last change %q", s.LastTamperChange)
	}

	// A base chain deleted (its hook unregistered).
	if err := fw.Run("nft", "flush chain inet qguard forward; delete chain inet qguard forward"); err != nil {
		t.Fatal(err)
	}
	s = waitTampered("base chain deleted", 4)
	if !strings.Contains(s.LastTamperChange, "chain forward deleted") {
		t.Errorf("last change %q", s.LastTamperChange)
	}

	// A second daemon for the same table, on another queue, is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	second, err := fw.Command(ctx, qguardBin, "run", "--config", d.cfgPath, "--queue", "7",
		"--control", filepath.Join(t.TempDir(), "c2.sock"), "--metrics", "").CombinedOutput()
	if err == nil || !strings.Contains(string(second), fmt.Sprintf("owned by another qguard: pid %d, queues 0", pid)) {
		t.Errorf("second daemon: %v, want a refusal naming pid %d:\n%s", err, pid, second)
	}
	time.Sleep(300 * time.Millisecond)
	if s := d.status(); s.RulesTampered != 4 || !s.RulesIntact {
		t.Errorf("the refused daemon disturbed the table: %+v", s)
	}
	if _, err := fw.Output("nft", "list", "table", "inet", "qguard"); err != nil {
		t.Errorf("table gone after the second daemon exited: %v", err)
	}

	if out, err := fw.Output(qguardBin, "rules", "show"); err != nil || !strings.Contains(out, fmt.Sprintf("# owned by a running qguard (pid %d, queues 0)", pid)) {
		t.Errorf("rules show does not name the owner: %v\n%s", err, out)
	}

	// qguard rules flush refuses; --force goes ahead and the guard repairs.
	out, err := fw.Output(qguardBin, "rules", "flush")
	if err == nil || !strings.Contains(out+errText(err), fmt.Sprintf("pid %d", pid)) {
		t.Errorf("rules flush while the daemon runs: %v %q", err, out)
	}
	out, err = fw.Output(qguardBin, "rules", "apply", "--config", d.cfgPath)
	if err == nil || !strings.Contains(out+errText(err), fmt.Sprintf("owned by a running qguard (pid %d", pid)) {
		t.Errorf("rules apply while the daemon runs: %v %q", err, out)
	}
	time.Sleep(100 * time.Millisecond)
	if s := d.status(); s.RulesTampered != 4 {
		t.Errorf("refused flush or apply changed the table: %+v", s)
	}
	if err := fw.Run(qguardBin, "rules", "flush", "--force"); err != nil {
		t.Fatalf("rules flush --force: %v", err)
	}
	waitTampered("rules flush --force", 5)
	m := scrape(t, fw, "127.0.0.1:9477")
	for k, want := range map[string]float64{"qguard_rules_tampered_total": 5, "qguard_rules_intact": 1,
		`qguard_rules_repairs_total{result="ok"}`: 5, "qguard_queue_bypassed_total": 0} {
		if m[k] != want {
			t.Errorf("metric %s = %v, want %v", k, m[k], want)
		}
	}
	if n := warns(); n != 5 {
		t.Errorf("%d WARN lines for 5 changes:\n%s", n, d.log.String())
	}

	d.signal(syscall.SIGTERM)
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if n := warns(); n != 5 {
		t.Errorf("shutdown counted as tampering:\n%s", d.log.String())
	}
	if out, _ := fw.Output("nft", "list", "tables"); strings.Contains(out, "qguard") {
		t.Errorf("table left after shutdown: %q", out)
	}
}

func errText(err error) string {
	if ee, ok := err.(interface{ Stderr() []byte }); ok {
		return string(ee.Stderr())
	}
	return fmt.Sprint(err)
}
