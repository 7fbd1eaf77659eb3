package metrics

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/engine"
)

func fakeStats() engine.Stats {
	return engine.Stats{
		Started: time.Unix(1700000000, 0),
		Queues: []engine.QueueStats{{
			Queue: 2, Packets: 100, Bytes: 6400, Accepted: 90, Dropped: 7, Rejected: 3, Offloaded: 5,
			FlowEntries: 12, FlowEvictions: 1, KernelQueueDropped: 4, KernelUserDropped: 2, KernelPending: 1,
			Latency: engine.Histogram{Count: 3, Sum: 3e-6, Bounds: engine.LatencyBuckets,
				Buckets: []uint64{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		}},
		Rules:   []engine.RuleStats{{Name: "no-telnet", Action: "reject", Hits: 3}},
		Default: engine.RuleStats{Name: engine.CounterDefault, Action: "accept", Hits: 90},
		Reloads: 3, Failures: 1, BlockQueued: 2,
		RulesInstalled: true, RulesIntact: false, RulesTampered: 2, RulesRepaired: 1, RulesRepairFailed: 1, QueueBypassed: 17,
	}
}

func TestEndpoint(t *testing.T) {
	reg := NewRegistry(fakeStats, BuildInfo{Version: "v9", Commit: "abc", GoVersion: "go1.26"})
	s, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`qguard_packets_total{queue="2"} 100`,
		`qguard_verdicts_total{queue="2",verdict="accept"} 90`,
		`qguard_verdicts_total{queue="2",verdict="drop"} 7`,
		`qguard_verdicts_total{queue="2",verdict="reject"} 3`,
		`qguard_offloaded_total{queue="2"} 5`,
		`qguard_rule_hits_total{action="reject",rule="no-telnet"} 3`,
		`qguard_rule_hits_total{action="accept",rule="(default)"} 90`,
		`qguard_flow_table_entries{queue="2"} 12`,
		`qguard_flow_table_evictions_total{queue="2"} 1`,
		`qguard_kernel_queue_dropped_total{queue="2"} 4`,
		`qguard_kernel_user_dropped_total{queue="2"} 2`,
		`qguard_decision_latency_seconds_bucket{queue="2",le="1e-06"} 1`,
		`qguard_decision_latency_seconds_bucket{queue="2",le="2.5e-06"} 3`,
		`qguard_decision_latency_seconds_count{queue="2"} 3`,
		`qguard_reloads_total{result="ok"} 2`,
		`qguard_reloads_total{result="error"} 1`,
		`qguard_block_requests_total{result="queued"} 2`,
		`qguard_build_info{commit="abc",go_version="go1.26",version="v9"} 1`,
		`qguard_start_time_seconds 1.7e+09`,
		`qguard_rules_intact 0`,
		`qguard_rules_tampered_total 2`,
		`qguard_rules_repairs_total{result="ok"} 1`,
		`qguard_rules_repairs_total{result="error"} 1`,
		`qguard_queue_bypassed_total 17`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("%s", body)
	}
}

func TestListenTaken(t *testing.T) {
	reg := NewRegistry(fakeStats, BuildInfo{})
	s, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if _, err := Listen(s.Addr().String(), reg, nil); err == nil || !strings.Contains(err.Error(), "listen for metrics") {
		t.Fatalf("second listener on a taken port: %v", err)
	}
}
