package engine

import (
	"fmt"
	"math"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
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

// rateReason says why the kernel cannot run r's rate limit as user space
// does, "" when it can.
func rateReason(r *verdict.Rule) string {
	if _, why := kernelRate(r.RateLimit); why != "" {
		return why
	}
	switch {
	case r.Action != verdict.ActionAccept && r.Action != verdict.ActionDrop,
		r.RateLimit.Exceed != verdict.ActionUnset && r.RateLimit.Exceed != verdict.ActionAccept && r.RateLimit.Exceed != verdict.ActionDrop:
		return "rate_limit with reject (the kernel limits accept and drop)"
	case r.Log || r.BlockSource > 0:
		// User space logs and blocks only what is within the limit.
		return "rate_limit with log or block_source"
	}
	return ""
}

// kernelRate is user space's token bucket l as the kernel's limit: the
// same rate, burst (its default too), key and exceed action, or why
// not. The kernel counts whole packets per second, minute, hour, day or
// week; a rate that is none of those (1.5/s, 7/10s) stays in user space.
func kernelRate(l *verdict.RateLimit) (*rules.RateLimit, string) {
	if l == nil {
		return nil, ""
	}
	ps := l.Rate.PerSecond()
	k := &rules.RateLimit{Key: rules.RateBySource, Exceed: rules.ActionDrop}
	for _, u := range rules.RateUnits {
		n := ps * u.Seconds()
		if r := math.Round(n); r >= 1 && r < 1<<32 && math.Abs(n-r) <= 1e-9*r {
			k.Rate, k.Unit = uint64(r), u
			break
		}
	}
	if k.Rate == 0 {
		return nil, fmt.Sprintf("rate_limit %v (not a whole number of packets a second, minute, hour, day or week)", l.Rate)
	}
	burst := float64(l.Burst)
	if l.Burst == 0 {
		burst = math.Max(1, math.Ceil(ps))
	}
	if burst >= 1<<32 {
		return nil, fmt.Sprintf("rate_limit burst %v (above the kernel's 32 bits)", burst)
	}
	k.Burst = uint32(burst)
	switch l.Key {
	case verdict.RateKeyFlow:
		k.Key = rules.RateByFlow
	case verdict.RateKeyRule:
		k.Key = rules.RateByRule
	}
	if l.Exceed == verdict.ActionAccept {
		k.Exceed = rules.ActionAccept
	}
	if l.MaxKeys > 0 {
		k.MaxKeys = uint32(min(l.MaxKeys, 1<<31))
	}
	if k.Key != rules.RateByRule && float64(k.Unit)/float64(k.Rate)*float64(k.Burst) > float64(rules.MaxRateIdle-1e9) {
		return nil, fmt.Sprintf("rate_limit %v burst %d (a bucket refills in more than %v)", l.Rate, k.Burst, rules.MaxRateIdle)
	}
	return k, ""
}
