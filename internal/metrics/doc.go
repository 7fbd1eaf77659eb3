// Package metrics exposes a running qguard engine to Prometheus.
//
// # Collection
//
// A custom collector reads the engine's counters when Prometheus scrapes:
// nothing on the packet path calls into client_golang. The per-packet cost is
// the engine's own uncontended atomic adds, plus one clock read pair for one
// packet in engine.SampleEvery (the decision latency histogram is sampled).
//
// # Metrics
//
//	qguard_packets_total{queue}                      packets received
//	qguard_bytes_total{queue}                        bytes received (copied length)
//	qguard_verdicts_total{queue,verdict}             accept, drop, reject
//	qguard_offloaded_total{queue}                    flows handed to the kernel
//	qguard_marked_total{queue}                       packets given a mark
//	qguard_cached_decisions_total{queue}             decisions from the flow table
//	qguard_alerts_total{queue,would}                 packets alert rules accepted that they would drop or reject
//	qguard_rule_hits_total{rule,action}              decisions per policy rule, and "(default)", "(invalid)", "(pending)", "(undecided)"
//	qguard_flow_table_entries{queue}                 flow table size
//	qguard_flow_table_evictions_total{queue}         flows evicted before they ended
//	qguard_decision_latency_seconds{queue}           histogram, 1 packet in 64
//	qguard_kernel_queue_dropped_total{queue}         kernel drops: queue full
//	qguard_kernel_user_dropped_total{queue}          kernel drops: socket buffer full
//	qguard_kernel_queue_pending{queue}               packets waiting in the kernel
//	qguard_reloads_total{result}                     ok, error
//	qguard_block_requests_total{result}              queued, dropped, error
//	qguard_xdp_dropped_total{kind}                   source, flow (only with XDP attached)
//	qguard_log_suppressed_total                      decision log lines rate-limited away
//	qguard_start_time_seconds                        process start
//	qguard_build_info{version,commit,go_version}     1
//
// The endpoint listens on loopback by default (127.0.0.1:9477): the counters
// reveal traffic patterns, so exposing them further is an explicit choice.
package metrics
