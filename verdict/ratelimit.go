package verdict

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"

	"github.com/qguard/qguard/verdict/packet"
)

// limiter is the token bucket table of one rate-limited rule. It lives in
// the Compiled policy, so every pipeline (queue) sharing the policy shares
// the limits; shards keep the pipelines from contending on one lock. The
// table has a fixed number of buckets: under a flood of distinct keys the
// least recently used key of a bucket set is replaced, so memory stays
// bounded and a flooder mostly evicts its own keys.
type limiter struct {
	rate   float64 // tokens per nanosecond
	burst  float64
	key    RateKey
	exceed Action
	seed   maphash.Seed
	shards [limShards]limShard
}

const (
	limShards = 16
	limWays   = 4
)

type limShard struct {
	mu    sync.Mutex
	sets  [][limWays]limSlot
	evict uint64
	_     [40]byte // keep shards on separate cache lines
}

type limSlot struct {
	key    uint64 // 0: empty
	tokens float64
	last   int64 // nanoseconds
}

func newLimiter(rl *RateLimit) (*limiter, error) {
	ps := rl.Rate.PerSecond()
	if !(ps > 0) || math.IsInf(ps, 0) {
		return nil, fmt.Errorf("%w: rate %v: expected a positive number of packets per period, like 100/s", ErrBadRateLimit, rl.Rate)
	}
	if rl.Burst < 0 {
		return nil, fmt.Errorf("%w: burst %d: expected 0 or more", ErrBadRateLimit, rl.Burst)
	}
	if rl.MaxKeys < 0 {
		return nil, fmt.Errorf("%w: max_keys %d: expected 0 or more", ErrBadRateLimit, rl.MaxKeys)
	}
	if rl.Exceed >= ActionAlert {
		return nil, fmt.Errorf("%w: exceed action %d", ErrBadRateLimit, rl.Exceed)
	}
	l := &limiter{rate: ps / 1e9, burst: float64(rl.Burst), key: rl.Key, exceed: rl.Exceed, seed: maphash.MakeSeed()}
	if l.burst == 0 {
		l.burst = math.Max(1, math.Ceil(ps))
	}
	if l.key == RateKeyUnset {
		l.key = RateKeySource
	}
	if l.exceed == ActionUnset {
		l.exceed = ActionDrop
	}
	keys := rl.MaxKeys
	if keys == 0 {
		keys = DefaultRateKeys
	}
	if l.key == RateKeyRule {
		keys = 1
	}
	perShard := (keys + limShards*limWays - 1) / (limShards * limWays)
	for i := range l.shards {
		l.shards[i].sets = make([][limWays]limSlot, perShard)
	}
	return l, nil
}

// allow takes a token for key at time now (ns) and reports whether there
// was one.
func (l *limiter) allow(key uint64, now int64) bool {
	if key == 0 {
		key = 1
	}
	sh := &l.shards[key%limShards]
	sh.mu.Lock()
	set := &sh.sets[(key/limShards)%uint64(len(sh.sets))]
	s := l.slot(sh, set, key, now)
	elapsed := now - s.last
	if elapsed > 0 {
		s.tokens = math.Min(l.burst, s.tokens+float64(elapsed)*l.rate)
		s.last = now
	}
	ok := s.tokens >= 1
	if ok {
		s.tokens--
	}
	sh.mu.Unlock()
	return ok
}

func (l *limiter) slot(sh *limShard, set *[limWays]limSlot, key uint64, now int64) *limSlot {
	victim := 0
	for i := range set {
		if set[i].key == key {
			return &set[i]
		}
		if set[i].key == 0 {
			victim = i
			break
		}
		if set[i].last < set[victim].last {
			victim = i
		}
	}
	s := &set[victim]
	if s.key != 0 {
		sh.evict++
	}
	*s = limSlot{key: key, tokens: l.burst, last: now}
	return s
}

// keyOf returns the bucket key of a packet.
func (l *limiter) keyOf(p *packet.Packet, fk *flowKey) uint64 {
	switch l.key {
	case RateKeyRule:
		return 1
	case RateKeyFlow:
		return maphash.Comparable(l.seed, fk.w)
	}
	return maphash.Comparable(l.seed, p.Src)
}
