package bench

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/queue"
)

// TestNFQTotals sums the kernel's per-queue counters over a queue range,
// from /proc/net/netfilter/nfnetlink_queue as queue.ParseProcQueues reads
// it (the one parser of that file).
func TestNFQTotals(t *testing.T) {
	in := "  100  23456     2 2 65531     7     3   991  1\n101 0 0 2 65531 0 0 5 1\n"
	st, err := queue.ParseProcQueues([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := queue.KernelStats{Valid: true, Queue: 100, PortID: 23456, QueueTotal: 2, CopyMode: 2, CopyRange: 65531, QueueDropped: 7, UserDropped: 3, IDSequence: 991}
	if len(st) != 2 || st[0] != want {
		t.Fatalf("got %+v, want first %+v", st, want)
	}
	d, u, q := nfqTotals(st, 100, 2)
	if d != 7 || u != 3 || q != 996 {
		t.Fatalf("totals %d %d %d", d, u, q)
	}
	if d, _, _ := nfqTotals(st, 101, 1); d != 0 {
		t.Fatalf("queue 101 dropped %d", d)
	}
	for _, bad := range []string{"1 2 3", "a 0 0 0 0 0 0 0 1", "70000 0 0 0 0 0 0 0 1"} {
		if _, err := queue.ParseProcQueues([]byte(bad)); err == nil {
			t.Errorf("ParseProcQueues(%q) accepted", bad)
		}
	}
}

func TestSummarizeAndPercentile(t *testing.T) {
	s := summarize([]float64{5, 1, 3, 2})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 5 {
		t.Fatalf("summary %+v", s)
	}
	if s := summarize(nil); s != (Summary{}) {
		t.Fatalf("empty summary %+v", s)
	}
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 0.5); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(d, 0.99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("empty p50 = %d", p)
	}
}

func TestSelectModes(t *testing.T) {
	all := AllModes(nil)
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m.Name] {
			t.Errorf("duplicate mode %s", m.Name)
		}
		seen[m.Name] = true
	}
	for _, want := range []string{"kernel", "c-nfq", "go-nfqueue", "go-nfqueue-batch", "qguard-perpkt", "qguard-vectored",
		"c-nfq-batch256", "qguard-batch32", "qguard-batch256", "qguard-fanout2", "qguard-policy100",
		"daemon-observe", "daemon-policy100", "daemon-l7", "daemon-offload", "daemon-kfirst", "daemon-kfirst-l7", "daemon-observe:tcp",
		"kernel:tcp", "c-nfq:mtu", "flood-xdp", "flood-nftset", "flood-queue"} {
		if !seen[want] {
			t.Errorf("mode %s missing", want)
		}
	}
	ms, err := SelectModes(&Config{Modes: []string{"qguard-batch256", "kernel"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	// Report order, and a bare name brings its traffic variants.
	if got := strings.Join(names, ","); got != "kernel,qguard-batch256,kernel:mtu,kernel:tcp,kernel:conn,qguard-batch256:mtu,qguard-batch256:tcp,qguard-batch256:conn,qguard-batch256:tcp-nogso" {
		t.Errorf("selected %s", got)
	}
	if ms, _ := SelectModes(&Config{Modes: []string{"kernel:tcp"}}); len(ms) != 1 {
		t.Errorf("kernel:tcp selected %d modes", len(ms))
	}
	if ms, _ := SelectModes(&Config{Modes: []string{"flood"}}); len(ms) != 3 {
		t.Errorf("group flood selected %d modes", len(ms))
	}
	_, err = SelectModes(&Config{Modes: []string{"nope"}})
	if !errors.Is(err, ErrUnknownMode) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown mode error: %v", err)
	}
}

func TestReportOutputs(t *testing.T) {
	rep := &Report{Kernel: "6.18", CPUs: 2, Runs: 2, Duration: "1s"}
	mk := func(name, traffic string, deliv uint64) Result {
		r := Result{Mode: name, Traffic: Traffic(traffic), Queues: 1}
		r.Samples = []Sample{{Seconds: 1, Sent: 2 * deliv, Delivered: deliv, Queued: deliv, HandlerCPU: int64(deliv) * 1000, RTTSamples: 3, RTTMedian: 20000, RTTP99: 90000,
			DrainPackets: 4 * deliv, DrainSeconds: 2},
			{Seconds: 1, Sent: 2 * deliv, Delivered: deliv + 10, Queued: deliv, HandlerCPU: int64(deliv) * 1000, DrainPackets: 3 * deliv, DrainSeconds: 1}}
		return r
	}
	rep.Results = []Result{mk("kernel", "udp64", 200), mk("c-nfq", "udp64", 100), mk("qguard-batch32", "udp64", 150),
		{Mode: "c-nfq:tcp", Traffic: TCP, Skipped: "no compiler"}, {Mode: "go-nfqueue", Traffic: UDP64, Error: "boom"}}
	rep.Results[2].Samples[1].DrainSeconds = 0 // a run without a drain phase is left out
	rep.Results[0].Queues = 0
	for i := range rep.Results {
		rep.Results[i].finish()
	}
	ratios(rep.Results)
	q := rep.Results[2]
	// Medians: qguard 155, C 105, kernel 205 packets/s.
	if q.VsC < 1.47 || q.VsC > 1.48 || q.VsKernel < 0.75 || q.VsKernel > 0.76 {
		t.Errorf("ratios vs C %.3f vs kernel %.3f", q.VsC, q.VsKernel)
	}
	if q.CPUPerPacket.Median != 1000 || q.LatencyP50Us.Median != 20 {
		t.Errorf("cpu/pkt %v, p50 %v", q.CPUPerPacket, q.LatencyP50Us)
	}
	// Drain: qguard 600/2s = 300 pps (its second run had none); C's
	// runs 200 and 300, median 250; go-nfqueue failed, so no ratio to it.
	if q.DrainPPS.Median != 300 || q.DrainVsC != 1.2 || q.DrainVsGo != 0 {
		t.Errorf("drain %v, vs C %v, vs go %v", q.DrainPPS, q.DrainVsC, q.DrainVsGo)
	}
	// Paired: run 1 150/100, run 2 160/110; drain only run 1 has both.
	if p := q.PairedVsC; p.Min != 160.0/110 || p.Max != 1.5 || q.PairedDrainVsC != (Summary{Median: 1.5, Min: 1.5, Max: 1.5}) {
		t.Errorf("paired %+v drain %+v", p, q.PairedDrainVsC)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"qguard-batch32", "1.48x", "skipped: no compiler", "FAILED: boom", "150..160", "  drain  ", "1.20x", "Paired with c-nfq", "delivered 1.45x / 1.48x / 1.50x   drain 1.50x"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := rep.WriteJSON(&b); err != nil || !strings.Contains(b.String(), `"vs_c": 1.476`) {
		t.Errorf("JSON (%v):\n%s", err, b.String())
	}
	svg := filepath.Join(t.TempDir(), "p.svg")
	if err := rep.WritePlot(svg); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(svg); err != nil || !bytes.Contains(data, []byte("<svg")) {
		t.Errorf("plot not SVG (%v)", err)
	}
}

func TestWithDefaults(t *testing.T) {
	c := (*Config)(nil).withDefaults()
	if c.Duration != 3*time.Second || c.Runs != 1 || c.Nice != -10 || len(c.Batches) != 2 || c.GenCPU == nil || len(c.HandlerCPUs) == 0 ||
		c.DrainBurst != 16384 || c.DrainBursts != 10 || c.QueueMaxLen != 16384 || c.RcvBuf != 64<<20 {
		t.Errorf("defaults %+v", c)
	}
	q := (&Config{Quick: true, NoRenice: true}).withDefaults()
	if q.Duration != time.Second || q.Nice != 0 || q.DrainBursts != 4 {
		t.Errorf("quick defaults: duration %s nice %d drain bursts %d", q.Duration, q.Nice, q.DrainBursts)
	}
}

// TestDrainVsGo: go-nfqueue has no drain phase; its flood rate is its
// capacity only when its queue overflowed.
func TestDrainVsGo(t *testing.T) {
	mk := func(name string, deliv, qdrop, drain uint64) Result {
		r := Result{Mode: name, Traffic: UDP64, Queues: 1}
		r.Samples = []Sample{{Seconds: 1, Delivered: deliv, Queued: deliv, QueueDropped: qdrop, DrainPackets: drain, DrainSeconds: 1}}
		return r
	}
	rep := &Report{Results: []Result{mk("c-nfq", 300, 0, 400), mk("go-nfqueue", 100, 50, 0), mk("qguard-batch256", 300, 0, 420)}}
	rep.Recompute()
	q := rep.Results[2]
	if q.DrainVsGo != 4.2 || q.DrainVsC != 1.05 {
		t.Errorf("drain vs go %v, vs C %v", q.DrainVsGo, q.DrainVsC)
	}
	if rep.Results[1].DrainPPS.Median != 0 {
		t.Errorf("go-nfqueue drain %v", rep.Results[1].DrainPPS)
	}
	// Without queue drops go-nfqueue kept up: its rate says nothing of
	// its capacity, and no ratio is made.
	rep = &Report{Results: []Result{mk("go-nfqueue", 100, 0, 0), mk("qguard-batch256", 300, 0, 420)}}
	rep.Recompute()
	if rep.Results[1].DrainVsGo != 0 {
		t.Errorf("drain vs go without go-nfqueue drops: %v", rep.Results[1].DrainVsGo)
	}
}

func TestLoadJSON(t *testing.T) {
	rep := &Report{Kernel: "6.18", Runs: 1, Results: []Result{{Mode: "c-nfq", Traffic: UDP64, Queues: 1,
		Samples: []Sample{{Seconds: 2, Delivered: 600, DrainPackets: 100, DrainSeconds: 0.5}}}}}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.SaveJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Results[0]; r.DeliveredPPS.Median != 300 || r.DrainPPS.Median != 200 {
		t.Errorf("recomputed %+v %+v", r.DeliveredPPS, r.DrainPPS)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJSON(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("broken JSON: %v", err)
	}
}

// TestCostSummaries: the firewall's CPU per packet is the generator's
// thread minus its own sending, plus ksoftirqd and the handler, per packet
// sent; ratios are to kernel-only and the C peer at the same rate.
func TestCostSummaries(t *testing.T) {
	load := func(rate int, gen, handler int64) LoadSample {
		return LoadSample{Rate: rate, Seconds: 1, Sent: 1000, Delivered: 1000, GenCPU: gen, GenFloor: 500, HandlerCPU: handler, SoftirqdCPU: 100_000}
	}
	mk := func(name string, queues int, gen, handler int64) Result {
		return Result{Mode: name, Traffic: UDP64, Queues: queues, Samples: []Sample{{Seconds: 1, Delivered: 10, Queued: 10,
			Loads: []LoadSample{load(50, gen, handler), load(150, gen/2, handler/2)}}}}
	}
	// kernel: (1.5ms - 0.5ms + 0.1ms) / 1000 = 1100 ns at rate 50.
	rep := &Report{Runs: 1, Results: []Result{mk("kernel", 0, 1_500_000, 0), mk("c-nfq", 1, 2_000_000, 2_000_000),
		mk("daemon-kfirst", 1, 1_700_000, 100_000), mk("daemon-observe", 1, 2_200_000, 2_400_000)}}
	rep.Recompute()
	k := rep.Results[0].Cost
	if len(k) != 2 || k[0].Rate != 50 || k[0].FirewallNS.Median != 1100 || k[0].VsKernel != 1 {
		t.Fatalf("kernel cost %+v", k)
	}
	// c-nfq: (2 - 0.5 + 0.1 + 2) ms / 1000 = 3600 ns; daemon-kfirst 1400 ns.
	if c := rep.Results[1].Cost[0]; c.FirewallNS.Median != 3600 || c.HandlerNS.Median != 2000 || c.VsC != 1 {
		t.Errorf("c-nfq cost %+v", c)
	}
	if f := rep.Results[2].Cost[0]; f.FirewallNS.Median != 1400 || f.VsKernel != 1400.0/1100 || f.VsC != 1400.0/3600 {
		t.Errorf("kernel-first cost %+v", f)
	}
	// A generator floor above the thread's CPU counts as no kernel work, never negative.
	if v := (LoadSample{Sent: 10, GenCPU: 100, GenFloor: 50, HandlerCPU: 300}).firewallNS(); v != 30 {
		t.Errorf("floor above the generator's CPU: %v", v)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Cost at a fixed load of 50 packets/s", "daemon-kfirst / kernel at 50 pps: firewall CPU 1.27x"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
