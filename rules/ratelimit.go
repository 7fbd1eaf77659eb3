package rules

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// RateKey says what a kernel rate limit counts separately.
type RateKey uint8

// Rate limit keys. The zero RateKey is invalid.
const (
	RateByRule   RateKey = iota + 1 // one bucket for the rule
	RateBySource                    // one bucket per source address
	RateByFlow                      // one bucket per connection (conntrack entry), both directions
)

func (k RateKey) String() string {
	switch k {
	case RateByRule:
		return "rule"
	case RateBySource:
		return "source"
	case RateByFlow:
		return "flow"
	}
	return "RateKey(" + strconv.Itoa(int(k)) + ")"
}

// RateLimit is user space's token bucket (verdict.RateLimit) as the
// kernel's limit expression has it: Rate packets per Unit, a bucket of
// Burst packets, full at first. A packet that finds a token gets the
// rule's action, one that finds none Exceed.
type RateLimit struct {
	Rate uint64
	// Unit is a second, minute, hour, day or week: the units the limit
	// expression is read back with.
	Unit   time.Duration
	Burst  uint32
	Key    RateKey
	Exceed Action // accept or drop
	// MaxKeys bounds the buckets of a source or flow key (0: 65,536).
	MaxKeys uint32
}

// DefaultRateKeys is RateLimit.MaxKeys when it is zero: user space's
// default.
const DefaultRateKeys = 65536

// RateUnits are the units a kernel rate limit may count in.
var RateUnits = []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

var errRate = errors.New("rate_limit")

func (l *RateLimit) check(action Action) error {
	if l == nil {
		return nil
	}
	unitOK := false
	for _, u := range RateUnits {
		unitOK = unitOK || l.Unit == u
	}
	switch {
	case l.Rate == 0 || !unitOK:
		return fmt.Errorf("%w: rate %d per %v (want 1 or more per second, minute, hour, day or week)", errRate, l.Rate, l.Unit)
	case l.Burst == 0:
		return fmt.Errorf("%w: burst 0", errRate)
	case l.Key < RateByRule || l.Key > RateByFlow:
		return fmt.Errorf("%w: key %v", errRate, l.Key)
	case l.Exceed != ActionAccept && l.Exceed != ActionDrop, action != ActionAccept && action != ActionDrop:
		return fmt.Errorf("%w: action %v, exceed %v (the kernel limits accept and drop only)", errRate, action, l.Exceed)
	case l.Key != RateByRule && float64(l.Unit)/float64(l.Rate)*float64(l.Burst) > float64(MaxRateIdle-time.Second):
		return fmt.Errorf("%w: a %v bucket refills in more than %v", errRate, l.Key, MaxRateIdle)
	}
	return nil
}

// keys is MaxKeys with its default.
func (l *RateLimit) keys() uint32 {
	if l.MaxKeys == 0 {
		return DefaultRateKeys
	}
	return l.MaxKeys
}

// idle is how long a source's or flow's bucket is kept after its last
// packet: until it would be full again, so forgetting it changes nothing
// (a new bucket starts full), and a second more.
// MaxRateIdle bounds idle: a source or flow key whose bucket refills more
// slowly stays in user space (the kernel's set timeouts are bounded).
const MaxRateIdle = 24 * time.Hour

func (l *RateLimit) idle() time.Duration {
	refill := float64(l.Unit) / float64(l.Rate) * float64(l.Burst)
	if refill > float64(MaxRateIdle) {
		return MaxRateIdle
	}
	return (time.Duration(refill) + time.Second).Truncate(time.Millisecond)
}
