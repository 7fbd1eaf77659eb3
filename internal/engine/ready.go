package engine

import (
	"errors"
	"fmt"
)

// ErrNotReady is what Ready wraps: the engine is not deciding packets as
// configured.
var ErrNotReady = errors.New("not ready")

// Ready says whether the engine is doing its job: started, its queues
// being read, and, when it installs rules, its nftables table as it left
// it (the guard's last verify). The error says what is missing; the
// metrics listener serves it as /readyz. Safe from any goroutine.
func (e *Engine) Ready() error {
	if !e.startOnce.Load() {
		return fmt.Errorf("%w: starting", ErrNotReady)
	}
	if e.q == nil {
		return fmt.Errorf("%w: no queues bound (offline engine)", ErrNotReady)
	}
	select {
	case <-e.runDone:
		if err := e.Err(); err != nil {
			return fmt.Errorf("%w: queues stopped: %w", ErrNotReady, err)
		}
		return fmt.Errorf("%w: queues stopped", ErrNotReady)
	default:
	}
	if e.rules == nil {
		return nil // --no-rules or rules.install: false: someone else steers
	}
	if g := e.guard.Load(); g != nil {
		if st := g.Status(); !st.Intact {
			why := st.LastChange
			if why == "" {
				why = st.LastError
			}
			return fmt.Errorf("%w: nftables table not as qguard installed it (%s)", ErrNotReady, why)
		}
	}
	return nil
}
