package verdict

import (
	"sync"
	"sync/atomic"
	"time"
)

// A packet needs the time only to a millisecond or so (idle timeouts, token
// buckets), and reading the clock costs tens of nanoseconds on some virtual
// machines: a quarter of a cached decision. One goroutine per process
// refreshes a shared coarse clock every coarseTick instead, started by the
// first pipeline that uses it.
const coarseTick = time.Millisecond

var (
	coarseOnce  sync.Once
	coarseStart = time.Now()
	coarseNanos atomic.Int64
)

// coarseNow returns the nanoseconds since coarseStart, updated every
// coarseTick.
func coarseNow() int64 {
	coarseOnce.Do(func() {
		coarseNanos.Store(int64(time.Since(coarseStart)))
		go func() {
			t := time.NewTicker(coarseTick)
			for range t.C {
				coarseNanos.Store(int64(time.Since(coarseStart)))
			}
		}()
	})
	return coarseNanos.Load()
}
