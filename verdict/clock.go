package verdict

import "time"

// clockStart anchors monoNow: a pipeline's times are nanoseconds on a
// monotonic clock, only ever compared with each other.
var clockStart = time.Now()

// monoNow is the clock of a pipeline whose Options give none and of a flow
// table's QUIC buffers outside a pipeline: one monotonic clock read. (A
// clock refreshed by a ticker goroutine instead costs the whole process a
// wake-up every tick, which under a steady packet rate cost the daemon more
// than the reads it saved; the engine gives its pipelines the queue's
// receive time, read once per batch.)
func monoNow() int64 { return int64(time.Since(clockStart)) }
