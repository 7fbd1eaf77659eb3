package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/bench/peers/gonfqueue"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
)

// peerEnv makes this test binary act as the go-nfqueue peer when the
// harness starts it inside the firewall namespace.
const peerEnv = "QGUARD_BENCH_TEST_PEER"

func TestMain(m *testing.M) {
	switch os.Getenv(peerEnv) {
	case "gonfqueue":
		if err := gonfqueue.Main(os.Args[1:]); err != nil {
			os.Stderr.WriteString("peer-gonfqueue: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	case "qguard":
		if err := QGuardPeer(os.Args[1:]); err != nil {
			os.Stderr.WriteString("peer-qguard: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestIntegrationQuick runs every mode for a short phase and checks that
// each one that ran delivered (or, for floods, dropped) packets, that a
// skipped mode says why, and that no namespace is left behind.
func TestIntegrationQuick(t *testing.T) {
	testutil.NeedRoot(t, "creates network namespaces")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testPrefix("qgbt")
	cfg := &Config{
		Quick: true, Duration: 700 * time.Millisecond, Warmup: 100 * time.Millisecond,
		LatencySamples: 50, Batches: []int{8, 32}, PolicyRules: 50, DrainBursts: 2, // the default 16,384 burst: a 4,096 one drained between two looks in fanout mode on an idle machine
		GoPeer: []string{exe}, GoPeerEnv: []string{peerEnv + "=gonfqueue"},
		QGuardPeer: []string{exe}, QGuardPeerEnv: []string{peerEnv + "=qguard"},
		LoadDuration: 500 * time.Millisecond,
		Prefix:       prefix,
		Progress:     func(p Progress) { t.Logf("%s %s: %s", time.Now().Format("15:04:05.000"), p.Mode, p.Phase) },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("%d modes in %s", len(rep.Results), time.Since(start).Round(time.Millisecond))
	var table strings.Builder
	_ = rep.WriteTable(&table)
	t.Log("\n" + table.String())
	// Nothing here prevents the fast generator and sink: a fallback is a bug.
	if rep.Generator != genPacket || rep.Sink != sinkNFT {
		t.Errorf("generator %q, sink %q; want %q, %q", rep.Generator, rep.Sink, genPacket, sinkNFT)
	}
	ran := 0
	for _, r := range rep.Results {
		switch {
		case r.Skipped != "":
			if strings.TrimSpace(r.Skipped) == "" {
				t.Errorf("%s: skipped without a reason", r.Mode)
			}
		case r.Error != "":
			t.Errorf("%s failed: %s", r.Mode, r.Error)
		case r.Traffic == Flood:
			ran++
			if r.DroppedPPS.Median <= 0 {
				t.Errorf("%s: dropped nothing", r.Mode)
			}
		case r.Traffic == TCP:
			ran++
			if r.DeliveredMbps.Median <= 0 {
				t.Errorf("%s: delivered no bytes", r.Mode)
			}
		case r.Traffic == Conn:
			ran++
			// Nothing drops here: every connection completes.
			if r.ConnPS.Median <= 0 || r.ConnFailures != 0 {
				t.Errorf("%s: %.0f connections/s, %d failed", r.Mode, r.ConnPS.Median, r.ConnFailures)
			}
			// Steered modes queue every connection's packets (a
			// kernel-first daemon none).
			if m := modeNamed(AllModes(cfg), r.Mode); m != nil && m.steer && r.queuedPerConn() < 5 {
				t.Errorf("%s: %.1f packets queued per connection", r.Mode, r.queuedPerConn())
			}
		default:
			ran++
			if r.DeliveredPPS.Median <= 0 {
				t.Errorf("%s: delivered no packets", r.Mode)
			}
			if r.LatencyP50Us.Median <= 0 {
				t.Errorf("%s: no latency figure", r.Mode)
			}
			// The drain phase checks the sink got every drained packet
			// and fails the mode otherwise.
			for _, m := range AllModes(cfg) {
				if m.Name == r.Mode && m.drain && r.DrainPPS.Median <= 0 {
					t.Errorf("%s: no drain figure", r.Mode)
				}
			}
			var handled uint64
			for _, s := range r.Samples {
				handled += s.Queued
			}
			// Offloaded flows may leave the queue idle in the window.
			if r.Queues > 0 && handled > 1000 && r.CPUPerPacket.Median <= 0 {
				t.Errorf("%s: no handler CPU figure", r.Mode)
			}
		}
	}
	if ran == 0 {
		t.Fatal("no mode ran")
	}
	checkCost(t, rep)
	if !strings.Contains(table.String(), "Cost at a fixed load of 50.0k packets/s") {
		t.Errorf("table has no cost section")
	}
	left, err := topo.Leftovers(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

func modeNamed(ms []Mode, name string) *Mode {
	for i := range ms {
		if ms[i].Name == name {
			return &ms[i]
		}
	}
	return nil
}

// TestIntegrationSocketPath runs the socket generator and sink (the
// fallback path) through one queue mode and checks it delivers.
func TestIntegrationSocketPath(t *testing.T) {
	testutil.NeedRoot(t, "creates network namespaces")
	prefix := testPrefix("qgbu")
	rep, err := Run(context.Background(), &Config{Modes: []string{"qguard-batch32:mtu", "flood-nftset"}, Duration: 500 * time.Millisecond,
		Warmup: 100 * time.Millisecond, LatencySamples: 20, Batches: []int{32}, DrainBurst: 2048, DrainBursts: 2, Generator: "udp", Sink: "socket", Prefix: prefix})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Generator != genUDP || rep.Sink != sinkSocket {
		t.Errorf("generator %q, sink %q; want %q, %q", rep.Generator, rep.Sink, genUDP, sinkSocket)
	}
	for _, r := range rep.Results {
		if r.Error != "" || r.Skipped != "" {
			t.Errorf("%s: %s%s", r.Mode, r.Error, r.Skipped)
		} else if r.DeliveredPPS.Median <= 0 && r.DroppedPPS.Median <= 0 {
			t.Errorf("%s: nothing delivered or dropped", r.Mode)
		} else if r.Traffic == UDPMTU && r.DrainPPS.Median <= 0 {
			t.Errorf("%s: no drain figure (UDP socket generator's bursts)", r.Mode)
		}
	}
	if _, err := Run(context.Background(), &Config{Generator: "dpdk"}); !errors.Is(err, ErrBadChoice) {
		t.Errorf("Run with generator dpdk: %v", err)
	}
	if left, err := topo.Leftovers(prefix); err != nil || len(left) > 0 {
		t.Errorf("namespaces left behind: %v %v", left, err)
	}
}

// TestIntegrationCancel cancels a run during its setup and mid-way, and
// checks that the run says it was cancelled and the topology goes.
func TestIntegrationCancel(t *testing.T) {
	testutil.NeedRoot(t, "creates network namespaces")
	for _, after := range []time.Duration{100 * time.Millisecond, 1500 * time.Millisecond} {
		prefix := testPrefix("qgbx")
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(after)
			cancel()
		}()
		_, err := Run(ctx, &Config{Modes: []string{"kernel"}, Duration: 10 * time.Second, Prefix: prefix})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run cancelled after %s: %v", after, err)
		}
		left, lerr := topo.Leftovers(prefix)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if len(left) > 0 {
			t.Errorf("cancelled after %s: namespaces left behind: %v", after, left)
		}
	}
}

func TestCheckCPUs(t *testing.T) {
	bad, none := 4096, -1
	c := (&Config{GenCPU: &bad}).withDefaults()
	if err := checkCPUs(&c); !errors.Is(err, ErrBadCPU) || !strings.Contains(err.Error(), "generator") {
		t.Errorf("generator on CPU 4096: %v", err)
	}
	c = (&Config{GenCPU: &none, SinkCPU: &none, HandlerCPUs: []int{-1}}).withDefaults()
	if err := checkCPUs(&c); err != nil {
		t.Errorf("unpinned: %v", err)
	}
	if _, err := Run(context.Background(), &Config{HandlerCPUs: []int{bad}}); !errors.Is(err, ErrBadCPU) {
		t.Errorf("Run with a bad handler CPU: %v", err)
	}
}

// checkCost: the daemon modes ran (the harness builds cmd/qguard), every
// mode with a cost phase has its figures at each rate, kernel-only is the
// floor, and kernel-first queues none of a flood no L7 rule can match.
func checkCost(t *testing.T, rep *Report) {
	t.Helper()
	if rep.CostSkipped != "" {
		t.Fatalf("cost phase skipped: %s", rep.CostSkipped)
	}
	byName := map[string]*Result{}
	for i := range rep.Results {
		byName[rep.Results[i].Mode] = &rep.Results[i]
	}
	for _, name := range []string{"kernel", "kernel-conntrack", "daemon-observe", "daemon-kfirst", "daemon-kfirst-l7", "daemon-offload"} {
		r := byName[name]
		if r == nil || !r.Ran() {
			t.Errorf("%s did not run", name)
			continue
		}
		if len(r.Cost) != 2 {
			t.Errorf("%s: cost at %d rates, want 2", name, len(r.Cost))
			continue
		}
		for _, l := range r.Cost {
			if l.FirewallNS.Median <= 0 || l.SentPPS.Median <= 0 || (name != "kernel" && l.VsKernel <= 0) {
				t.Errorf("%s at %d pps: no figures: %+v", name, l.Rate, l)
			}
		}
	}
	if kf := byName["daemon-kfirst"]; kf != nil && kf.Ran() {
		for _, s := range kf.Samples {
			if s.Queued != 0 {
				t.Errorf("daemon-kfirst: the queue received %d flood packets", s.Queued)
			}
			for _, l := range s.Loads {
				if l.Queued != 0 {
					t.Errorf("daemon-kfirst at %d pps: the queue received %d packets", l.Rate, l.Queued)
				}
			}
		}
	}
	if obs := byName["daemon-observe"]; obs != nil && obs.Ran() {
		for _, l := range obs.Cost {
			if l.Queued == 0 || l.HandlerNS.Median <= 0 {
				t.Errorf("daemon-observe at %d pps: queued %d, handler %v", l.Rate, l.Queued, l.HandlerNS)
			}
		}
	}
}

// testPrefix names a test's namespaces after the process too, so that the
// leftover check does not see another run's namespaces on a shared machine.
func testPrefix(p string) string { return testutil.ProcessPrefix(p) }
