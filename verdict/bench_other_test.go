//go:build !linux

package verdict

import "testing"

type cpuMeter struct{}

func startCPU(b *testing.B) *cpuMeter { return &cpuMeter{} }

func (m *cpuMeter) report(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
}
