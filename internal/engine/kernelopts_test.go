package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/rules"
	"github.com/qguard/qguard/verdict"
)

// TestKernelRate checks user space's token buckets as the kernel's limit:
// the same rate in the unit that makes it whole, user space's default
// burst, key and exceed action, or the reason it stays in user space.
func TestKernelRate(t *testing.T) {
	rate := func(ev float64, per time.Duration) verdict.Rate { return verdict.Rate{Events: ev, Per: per} }
	for _, c := range []struct {
		in   verdict.RateLimit
		want rules.RateLimit
		why  string
	}{
		{in: verdict.RateLimit{Rate: rate(100, time.Second)},
			want: rules.RateLimit{Rate: 100, Unit: time.Second, Burst: 100, Key: rules.RateBySource, Exceed: rules.ActionDrop}},
		{in: verdict.RateLimit{Rate: rate(30, time.Minute), Key: verdict.RateKeyFlow, MaxKeys: 10},
			want: rules.RateLimit{Rate: 30, Unit: time.Minute, Burst: 1, Key: rules.RateByFlow, Exceed: rules.ActionDrop, MaxKeys: 10}},
		{in: verdict.RateLimit{Rate: rate(7, 10*time.Second), Burst: 3, Key: verdict.RateKeyRule, Exceed: verdict.ActionAccept},
			want: rules.RateLimit{Rate: 42, Unit: time.Minute, Burst: 3, Key: rules.RateByRule, Exceed: rules.ActionAccept}},
		{in: verdict.RateLimit{Rate: rate(1, time.Hour), Burst: 2},
			want: rules.RateLimit{Rate: 1, Unit: time.Hour, Burst: 2, Key: rules.RateBySource, Exceed: rules.ActionDrop}},
		{in: verdict.RateLimit{Rate: rate(1.3, 7300*time.Millisecond)}, why: "not a whole number"},
		{in: verdict.RateLimit{Rate: rate(1, 7*24*time.Hour), Burst: 2}, why: "refills in more than"},
		{in: verdict.RateLimit{}, why: "not a whole number"},
	} {
		got, why := kernelRate(&c.in)
		switch {
		case c.why != "" && !strings.Contains(why, c.why):
			t.Errorf("%+v: reason %q, want %q", c.in, why, c.why)
		case c.why == "" && (why != "" || got == nil || *got != c.want):
			t.Errorf("%+v: %+v (%q), want %+v", c.in, got, why, c.want)
		}
	}
	r := &verdict.Rule{Action: verdict.ActionReject, RateLimit: &verdict.RateLimit{Rate: rate(1, time.Second)}}
	if why := rateReason(r); !strings.Contains(why, "reject") {
		t.Errorf("reject: %q", why)
	}
	r = &verdict.Rule{Action: verdict.ActionAccept, Log: true, RateLimit: &verdict.RateLimit{Rate: rate(1, time.Second)}}
	if why := rateReason(r); !strings.Contains(why, "log") {
		t.Errorf("log: %q", why)
	}
}
