package engine

import (
	"math"

	"github.com/qguard/qguard/config"
)

// kernelOptsOf is what the kernel's share of f's rule options depends on
// outside the policy: the decision log rate (the kernel's limit is per
// rule, in whole lines a second, rounded up) and whether XDP blocks sources.
func kernelOptsOf(f *config.File) *kernelOpts {
	o := &kernelOpts{xdp: len(f.XDP.Interfaces) > 0}
	if ps := f.PipelineOptions().LogRate.PerSecond(); ps > 0 {
		o.logRate = uint32(min(math.Ceil(ps), 1e6))
	}
	return o
}
