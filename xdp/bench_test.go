package xdp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/qguard/qguard/internal/testutil"
)

// BenchmarkBlockSource measures the map update path the daemon takes for
// every "block this source" decision: one bpf(BPF_MAP_UPDATE_ELEM) call.
func BenchmarkBlockSource(b *testing.B) {
	f := newFilter(b, &Config{MaxSources: 1 << 16})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if err := f.BlockSource(a, time.Minute); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBlockFlow is BenchmarkBlockSource for 5-tuples.
func BenchmarkBlockFlow(b *testing.B) {
	f := newFilter(b, &Config{MaxFlows: 1 << 16})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		src := netip.AddrPortFrom(cli6, uint16(i))
		if err := f.BlockFlow(ProtoUDP, src, ap(srv6, 53), time.Minute); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkProgram times the XDP program itself in the kernel
// (BPF_PROG_TEST_RUN with repeat): the cost per packet of a pass, a source
// drop and a flow drop with 10,000 other entries in each map. It is the
// program's share only: no driver, no skb, no stack. The metric
// "ns/pkt" is the kernel's mean per run; "Mpps" its inverse.
func BenchmarkProgram(b *testing.B) {
	f := newFilter(b, nil)
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		if err := f.BlockSource(a, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.BlockFlow(ProtoUDP, ap(a, 1), ap(srv4, 2), 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.BlockSource(cli4, 0); err != nil {
		b.Fatal(err)
	}
	if err := f.BlockFlow(ProtoUDP, ap(alt4, 1000), ap(srv4, 53), 0); err != nil {
		b.Fatal(err)
	}
	if err := f.BlockFlow(ProtoTCP, ap(alt6, 1000), ap(srv6, 443), 0); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fr   frame
		want Action
	}{
		{"pass-udp4", frame{proto: ProtoUDP, src: ap(alt4, 1001), dst: ap(srv4, 53)}, ActionPass},
		{"pass-tcp6", frame{proto: ProtoTCP, src: ap(alt6, 1001), dst: ap(srv6, 443)}, ActionPass},
		{"drop-source4", frame{proto: ProtoUDP, src: ap(cli4, 1), dst: ap(srv4, 2)}, ActionDrop},
		{"drop-flow-udp4", frame{proto: ProtoUDP, src: ap(alt4, 1000), dst: ap(srv4, 53)}, ActionDrop},
		{"drop-flow-tcp6", frame{proto: ProtoTCP, src: ap(alt6, 1000), dst: ap(srv6, 443)}, ActionDrop},
	} {
		b.Run(c.name, func(b *testing.B) {
			pkt := c.fr.build()
			benchRun(b, func(n int) (Action, time.Duration, error) { return f.Benchmark(pkt, n) }, c.want)
		})
	}
	// The test-run harness's own cost per run, to subtract: a program
	// that only returns XDP_PASS.
	b.Run("baseline-empty-program", func(b *testing.B) {
		testutil.NeedRoot(b, "to load BPF programs")
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.XDP,
			License:      "MIT",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(ActionPass)), asm.Return()},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer prog.Close()
		pkt := frame{proto: ProtoUDP, src: ap(alt4, 1), dst: ap(srv4, 2)}.build()
		benchRun(b, func(n int) (Action, time.Duration, error) {
			ret, d, err := prog.Benchmark(pkt, n, nil)
			return Action(ret), d, err
		}, ActionPass)
	})
}

// benchRunRepeat is the number of kernel runs per BPF_PROG_TEST_RUN call.
// The call itself is expensive: with repeat > 1 the kernel swaps the XDP
// dispatcher in and out (an RCU grace period, ~20ms), so the wall time per
// op says nothing; the kernel's own per-run mean is the figure.
const benchRunRepeat = 200000

func benchRun(b *testing.B, run func(n int) (Action, time.Duration, error), want Action) {
	var total time.Duration
	calls := 0
	for b.Loop() {
		a, d, err := run(benchRunRepeat)
		if err != nil {
			b.Fatal(err)
		}
		if a != want {
			b.Fatalf("verdict %v, want %v", a, want)
		}
		total += d
		calls++
	}
	per := float64(total.Nanoseconds()) / float64(calls)
	b.ReportMetric(per, "ns/pkt")
	b.ReportMetric(1e3/per, "Mpps")
}

// TestIntegrationBlockAllocs: the block calls sit on the daemon's decision
// path and must not allocate. (Unblocking an entry that does not exist
// costs cilium/ebpf's ErrKeyNotExist error value: two allocations.)
func TestIntegrationBlockAllocs(t *testing.T) {
	f := newFilter(t, nil)
	for name, fn := range map[string]func() error{
		"BlockSource": func() error { return f.BlockSource(cli4, time.Minute) },
		"Block+UnblockSource": func() error {
			must(t, f.BlockSource(cli6, 0))
			return f.UnblockSource(cli6)
		},
		"BlockFlow": func() error { return f.BlockFlow(ProtoUDP, ap(cli6, 1), ap(srv6, 2), 0) },
		"Block+UnblockFlow": func() error {
			must(t, f.BlockFlow(ProtoTCP, ap(cli4, 1), ap(srv4, 2), time.Second))
			return f.UnblockFlow(ProtoTCP, ap(cli4, 1), ap(srv4, 2))
		},
	} {
		if n := testing.AllocsPerRun(100, func() { must(t, fn()) }); n != 0 {
			t.Errorf("%s: %.1f allocations per call, want 0", name, n)
		}
	}
}
