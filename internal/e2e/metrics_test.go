package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// metricsYAML queues everything (mode queue-all): the counters checked are
// the queue's.
const metricsYAML = `
metrics: {listen: "127.0.0.1:9477"}
rules: {mode: queue-all}
policy:
  default: accept
  rules:
    - name: sink-drop
      match: {proto: udp, dport: [9001]}
      action: drop
`

// TestIntegrationMetrics: the metrics endpoint answers with the documented
// counters and they match the traffic sent.
func TestIntegrationMetrics(t *testing.T) {
	top := newTopo(t, "qem")
	d := startDaemon(t, top, metricsYAML)
	const (
		pings4, pings6 = 5, 3
		udp            = 100
	)
	if err := ping(top.Client, top.ServerIP4.String(), pings4); err != nil {
		t.Fatal(err)
	}
	if err := ping(top.Client, top.ServerIP6.String(), pings6); err != nil {
		t.Fatal(err)
	}
	c, err := dialIn(top.Client, "udp", hostPort(top.ServerIP4, portUDPSink), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range udp {
		if _, err := fmt.Fprintf(c, "%d", i); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	accepted := 2 * (pings4 + pings6) // requests and replies are both forwarded
	total := accepted + udp
	var m map[string]float64
	deadline := time.Now().Add(3 * time.Second)
	for {
		m = scrape(t, top.Firewall, "127.0.0.1:9477")
		if m[`qguard_packets_total{queue="0"}`] >= float64(total) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := map[string]float64{
		`qguard_packets_total{queue="0"}`:                          float64(total),
		`qguard_verdicts_total{queue="0",verdict="accept"}`:        float64(accepted),
		`qguard_verdicts_total{queue="0",verdict="drop"}`:          udp,
		`qguard_verdicts_total{queue="0",verdict="reject"}`:        0,
		`qguard_rule_hits_total{action="drop",rule="sink-drop"}`:   udp,
		`qguard_rule_hits_total{action="accept",rule="(default)"}`: float64(accepted),
		`qguard_decision_latency_seconds_count{queue="0"}`:         float64(total / 64),
		`qguard_kernel_queue_dropped_total{queue="0"}`:             0,
		`qguard_reloads_total{result="ok"}`:                        0,
		`qguard_reloads_total{result="error"}`:                     0,
		`qguard_block_requests_total{result="dropped"}`:            0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("metric %s missing", k)
			continue
		}
		if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	for _, prefix := range []string{"qguard_build_info{", "qguard_flow_table_entries{", "qguard_flow_table_evictions_total{",
		"qguard_kernel_user_dropped_total{", "qguard_start_time_seconds", "qguard_bytes_total{", "qguard_offloaded_total{"} {
		if !hasPrefix(m, prefix) {
			t.Errorf("no %s metric", prefix)
		}
	}
	if m[`qguard_flow_table_entries{queue="0"}`] < 1 {
		t.Errorf("flow table should hold the flows just seen")
	}
	// A reload shows up as well.
	if !d.reload() {
		t.Fatal("reload failed")
	}
	m = scrape(t, top.Firewall, "127.0.0.1:9477")
	if m[`qguard_reloads_total{result="ok"}`] != 1 {
		t.Errorf("reloads ok = %v after one reload", m[`qguard_reloads_total{result="ok"}`])
	}
	// `qguard status` prints the same numbers.
	out, err := top.Firewall.Output(qguardBin, "status", "--control", d.control)
	if err != nil {
		t.Fatalf("qguard status: %v", err)
	}
	if !strings.Contains(out, "sink-drop") || !strings.Contains(out, fmt.Sprint(total)) {
		t.Errorf("qguard status output lacks the counters:\n%s", out)
	}
}

func hasPrefix(m map[string]float64, p string) bool {
	for k := range m {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}
