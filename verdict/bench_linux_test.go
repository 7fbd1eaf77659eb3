package verdict

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// threadCPU returns the calling thread's CPU time in seconds. Benchmarks
// lock their thread and report decisions per CPU second beside the wall
// clock figure, because on a shared machine the wall clock also counts the
// time other processes held the core.
func threadCPU() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// cpuMeter reports ops per CPU second of the benchmark's thread.
type cpuMeter struct{ start float64 }

func startCPU(b *testing.B) *cpuMeter {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return &cpuMeter{start: threadCPU()}
}

func (m *cpuMeter) report(b *testing.B, unit string) {
	if cpu := threadCPU() - m.start; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, unit+"/cpu-s")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
}
