package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

const noRulesYAML = `
log: {decisions: 2/s}
policy:
  default: accept
  rules:
    - name: no-alt-http
      match: {proto: tcp, dport: [8081]}
      action: reject
    - name: logged-http
      match: {proto: tcp, dport: [8080]}
      action: accept
      log: true
`

// TestIntegrationNoRules: with --no-rules qguard installs nothing and serves
// the queue someone else steers to (here an iptables NFQUEUE rule). Nobody
// acts on qguard's marks then, so a reject becomes a drop. Per-decision log
// lines are rate-limited.
func TestIntegrationNoRules(t *testing.T) {
	top := newTopo(t, "qen")
	servers(t, top)
	if err := top.Firewall.Run("iptables", "-A", "FORWARD", "-p", "tcp", "-j", "NFQUEUE", "--queue-num", "7"); err != nil {
		t.Skipf("iptables NFQUEUE unavailable: %v", err)
	}
	d := startDaemon(t, top, noRulesYAML, "--no-rules", "--queue", "7")
	if out, _ := top.Firewall.Output("nft", "list", "tables"); strings.Contains(out, "inet qguard") {
		t.Fatalf("--no-rules installed a table:\n%s", out)
	}
	for range 6 {
		if err := httpGet(top.Client, hostPort(top.ServerIP4, portHTTP)); err != nil {
			t.Fatalf("HTTP through the external NFQUEUE rule: %v", err)
		}
	}
	t0 := time.Now()
	if _, err := dialIn(top.Client, "tcp", hostPort(top.ServerIP4, portHTTPAlt), 1500*time.Millisecond); err == nil {
		t.Error("reject rule let the connection through")
	} else if time.Since(t0) < time.Second {
		t.Errorf("without qguard's rules a reject must degrade to a drop (timeout), got %v after %v", err, time.Since(t0))
	}
	st := d.status()
	if st.RulesInstalled || st.Queues[0].Queue != 7 || st.Queues[0].Packets == 0 || st.Queues[0].Rejected == 0 {
		t.Errorf("status: %+v", st)
	}
	if n := len(jsonLines(d.log.String(), "decision")); n < 1 || n > 3 {
		t.Errorf("%d decision log lines for 6 logged flows in about a second at 2/s", n)
	}
	if st.LogSuppressed == 0 {
		t.Errorf("no suppressed decision lines counted: %+v", st)
	}
}

// TestIntegrationStopUnderLoadNoRules: with --no-rules the operator's own
// rule queues to qguard's queue (here iptables NFQUEUE with
// --queue-bypass); SIGTERM under 20,000 packets a second loses none: the
// quiesced queue fail-opens new packets, and once it is unbound the rule's
// bypass accepts them.
func TestIntegrationStopUnderLoadNoRules(t *testing.T) {
	top := newTopo(t, "qeu")
	if err := top.Firewall.Run("iptables", "-A", "FORWARD", "-p", "udp", "--dport", strconv.Itoa(portUDPSink),
		"-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"); err != nil {
		t.Skipf("iptables NFQUEUE unavailable: %v", err)
	}
	d := startDaemon(t, top, "", "--no-rules")
	stopUnderLoad(t, top, d)
}
