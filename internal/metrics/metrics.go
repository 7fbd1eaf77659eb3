package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qguard/qguard/internal/engine"
)

// Source returns a fresh snapshot; *engine.Engine's Stats method fits.
type Source func() engine.Stats

// BuildInfo labels qguard_build_info.
type BuildInfo struct {
	Version, Commit, GoVersion string
}

var (
	lq      = []string{"queue"}
	dPkts   = prometheus.NewDesc("qguard_packets_total", "Packets received from the kernel queue.", lq, nil)
	dBytes  = prometheus.NewDesc("qguard_bytes_total", "Bytes received from the kernel queue (copied length).", lq, nil)
	dVerd   = prometheus.NewDesc("qguard_verdicts_total", "Verdicts given, by verdict.", []string{"queue", "verdict"}, nil)
	dOff    = prometheus.NewDesc("qguard_offloaded_total", "Flows whose later packets the kernel decides.", lq, nil)
	dMark   = prometheus.NewDesc("qguard_marked_total", "Packets given a mark by a rule.", lq, nil)
	dAlert  = prometheus.NewDesc("qguard_alerts_total", "Packets alert rules accepted that they would have dropped or rejected (also in qguard_verdicts_total{verdict=\"accept\"}).", []string{"queue", "would"}, nil)
	dCached = prometheus.NewDesc("qguard_cached_decisions_total", "Decisions taken from the flow table.", lq, nil)
	dRule   = prometheus.NewDesc("qguard_rule_hits_total", "Decisions made by each policy rule; rule=\"(default)\" is the default action.", []string{"rule", "action"}, nil)
	dFlow   = prometheus.NewDesc("qguard_flow_table_entries", "Flows in the flow table.", lq, nil)
	dEvict  = prometheus.NewDesc("qguard_flow_table_evictions_total", "Flows evicted from a full flow table.", lq, nil)
	dLat    = prometheus.NewDesc("qguard_decision_latency_seconds", "Decision latency, sampled one packet in "+strconv.Itoa(engine.SampleEvery)+".", lq, nil)
	dKQ     = prometheus.NewDesc("qguard_kernel_queue_dropped_total", "Packets the kernel dropped because the queue was full (fail-closed; with queue.fail_open they pass: qguard_queue_bypassed_total).", lq, nil)
	dKU     = prometheus.NewDesc("qguard_kernel_user_dropped_total", "Packets the kernel dropped because the socket buffer was full (fail-closed; with queue.fail_open they pass: qguard_queue_bypassed_total).", lq, nil)
	dKP     = prometheus.NewDesc("qguard_kernel_queue_pending", "Packets waiting in the kernel queue.", lq, nil)
	dReload = prometheus.NewDesc("qguard_reloads_total", "Configuration reloads by result.", []string{"result"}, nil)
	dBlock  = prometheus.NewDesc("qguard_block_requests_total", "Source blocks requested by rules, by result.", []string{"result"}, nil)
	dXDP    = prometheus.NewDesc("qguard_xdp_dropped_total", "Packets the XDP program dropped, by block kind.", []string{"kind"}, nil)
	dLogSup = prometheus.NewDesc("qguard_log_suppressed_total", "Per-decision log lines dropped by the rate limit.", nil, nil)
	dIntact = prometheus.NewDesc("qguard_rules_intact", "1 when the nftables table is as qguard left it, 0 when someone else changed it and it is not yet re-installed.", nil, nil)
	dTamper = prometheus.NewDesc("qguard_rules_tampered_total", "Changes to qguard's nftables table made by someone else.", nil, nil)
	dRepair = prometheus.NewDesc("qguard_rules_repairs_total", "Re-installs of the nftables table after a foreign change, by result.", []string{"result"}, nil)
	dBypass = prometheus.NewDesc("qguard_queue_bypassed_total", "Steered packets the kernel let through without queueing them (queue.fail_open with the queue or socket buffer full).", nil, nil)
	dNameB  = prometheus.NewDesc("qguard_name_bindings", "Name-address bindings from DNS answers (dst_name, src_name).", nil, nil)
	dNameA  = prometheus.NewDesc("qguard_name_answers_total", "DNS answers read for the names, by result: solicited (matched a pending query), unsolicited (no matching query: bound nothing), untrusted (a server not in names.servers: bound nothing), malformed.", []string{"result"}, nil)
	dNameEv = prometheus.NewDesc("qguard_name_evictions_total", "Bindings (kind=\"binding\", names.max_bindings) and pending queries (kind=\"query\", names.max_pending) replaced before they expired.", []string{"kind"}, nil)
	dNameK  = prometheus.NewDesc("qguard_name_kernel_update_drops_total", "Bindings not sent to the kernel sets because the update channel was full.", nil, nil)
	dStart  = prometheus.NewDesc("qguard_start_time_seconds", "When the engine started, Unix time.", nil, nil)
)

// Collector turns engine snapshots into metrics at scrape time.
type Collector struct{ src Source }

// NewCollector returns a collector reading src.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dPkts, dBytes, dVerd, dOff, dMark, dCached, dAlert, dRule, dFlow, dEvict, dLat, dKQ, dKU, dKP, dReload, dBlock, dXDP, dLogSup, dIntact, dTamper, dRepair, dBypass, dNameB, dNameA, dNameEv, dNameK, dStart} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, q := range s.Queues {
		n := strconv.Itoa(int(q.Queue))
		counter(dPkts, q.Packets, n)
		counter(dBytes, q.Bytes, n)
		counter(dVerd, q.Accepted, n, "accept")
		counter(dVerd, q.Dropped, n, "drop")
		counter(dVerd, q.Rejected, n, "reject")
		counter(dOff, q.Offloaded, n)
		counter(dMark, q.Marked, n)
		counter(dCached, q.Cached, n)
		counter(dAlert, q.AlertDrop, n, "drop")
		counter(dAlert, q.AlertReject, n, "reject")
		gauge(dFlow, float64(q.FlowEntries), n)
		counter(dEvict, q.FlowEvictions, n)
		counter(dKQ, q.KernelQueueDropped, n)
		counter(dKU, q.KernelUserDropped, n)
		gauge(dKP, float64(q.KernelPending), n)
		ch <- histogram(q.Latency, n)
	}
	for _, r := range s.Rules {
		counter(dRule, r.Hits, r.Name, r.Action)
	}
	counter(dRule, s.Default.Hits, engine.CounterDefault, s.Default.Action)
	counter(dReload, s.Reloads-s.Failures, "ok")
	counter(dReload, s.Failures, "error")
	counter(dBlock, s.BlockQueued, "queued")
	counter(dBlock, s.BlockDropped, "dropped")
	counter(dBlock, s.BlockErrors, "error")
	if len(s.XDP) > 0 {
		counter(dXDP, s.XDPDroppedSource, "source")
		counter(dXDP, s.XDPDroppedFlow, "flow")
	}
	counter(dLogSup, s.LogSuppressed)
	if s.RulesInstalled {
		intact := 0.0
		if s.RulesIntact {
			intact = 1
		}
		gauge(dIntact, intact)
		counter(dTamper, s.RulesTampered)
		counter(dRepair, s.RulesRepaired, "ok")
		counter(dRepair, s.RulesRepairFailed, "error")
		counter(dBypass, s.QueueBypassed)
	}
	if n := s.Names; n != nil {
		gauge(dNameB, float64(n.Bindings))
		counter(dNameA, n.Answers, "solicited")
		counter(dNameA, n.Unsolicited, "unsolicited")
		counter(dNameA, n.Untrusted, "untrusted")
		counter(dNameA, n.Malformed, "malformed")
		counter(dNameEv, n.Evicted, "binding")
		counter(dNameEv, n.QueryEvicts, "query")
		counter(dNameK, n.UpdateDrops)
	}
	if !s.Started.IsZero() {
		gauge(dStart, float64(s.Started.UnixNano())/1e9)
	}
}

func histogram(h engine.Histogram, queue string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		if i < len(h.Buckets) {
			cum += h.Buckets[i]
		}
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(dLat, h.Count, h.Sum, buckets, queue)
}

// NewRegistry returns a registry with the engine collector, build info and
// the Go runtime and process collectors.
func NewRegistry(src Source, bi BuildInfo) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "qguard_build_info",
		Help:        "Build information; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "go_version": bi.GoVersion},
	}, func() float64 { return 1 }))
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server serves /metrics, /healthz and /readyz until Shutdown.
type Server struct {
	srv   *http.Server
	ln    net.Listener
	ready atomic.Pointer[func() error]
}

// SetReady sets what /readyz asks (engine.Engine.Ready fits); until it is
// called /readyz answers 503 "starting".
func (s *Server) SetReady(f func() error) { s.ready.Store(&f) }

// healthz: the process is up and serving (liveness).
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// readyz: 200 "ready" while the daemon decides packets as configured, 503
// with the reason otherwise (readiness).
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	err := errors.New("not ready: starting")
	if f := s.ready.Load(); f != nil {
		err = (*f)()
	}
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Listen binds addr at once, so a taken port fails start-up rather than
// surfacing later in a log line.
func Listen(addr string, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	s := &Server{ln: ln}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", healthz)
	mux.HandleFunc("/readyz", s.readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "qguard: metrics at /metrics, liveness at /healthz, readiness at /readyz")
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops the server, waiting up to a second for scrapes in flight.
func (s *Server) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
