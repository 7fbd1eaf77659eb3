package bench

import (
	"bytes"
	"strings"
	"testing"
)

// TestKernelFirstAgainstConntrack: with kernel-conntrack in the run the
// kernel-first summary measures against it first (a per-flow firewall
// needs conntrack), flood and CPU, and then against kernel-only.
func TestKernelFirstAgainstConntrack(t *testing.T) {
	mk := func(name string, delivered uint64, gen int64) Result {
		s := func(d uint64) Sample {
			return Sample{Seconds: 1, Delivered: d, Loads: []LoadSample{{Rate: 50, Seconds: 1, Sent: 1000, Delivered: 1000,
				GenCPU: gen, GenFloor: 500, SoftirqdCPU: 100_000}}}
		}
		return Result{Mode: name, Traffic: UDP64, Samples: []Sample{s(delivered), s(delivered * 11 / 10)}}
	}
	// Firewall ns at rate 50: kernel 1100, kernel-conntrack 2100, daemon-kfirst 2310.
	rep := &Report{Runs: 2, Results: []Result{mk("kernel", 1000, 1_500_000), mk("kernel-conntrack", 500, 2_500_000),
		mk("daemon-kfirst", 450, 2_710_000)}}
	rep.Recompute()
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ") // lines are wrapped
	want := []string{
		"daemon-kfirst flood: delivered 0.90x kernel-conntrack's (the floor of a per-flow firewall) (paired 0.90..0.90x), 0.45x kernel-only",
		"daemon-kfirst / kernel-conntrack at 50 pps: firewall CPU 1.10x (paired 1.10..1.10x)",
		"daemon-kfirst / kernel at 50 pps: firewall CPU 2.10x",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Fatalf("table lacks %q after byte %d:\n%s", w, at, out)
		}
		at += i + len(w)
	}
}
