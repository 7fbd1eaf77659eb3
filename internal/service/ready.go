package service

import (
	"errors"
	"fmt"

	"github.com/qguard/qguard/internal/engine"
)

// ErrNotReady is what Ready wraps: the engine is not deciding packets as
// configured.
var ErrNotReady = errors.New("not ready")

// Ready says whether e is doing its job: started, its queues being read,
// and, when it installs rules, its nftables table as it left it (the
// guard's last verify). The error says what is missing; the metrics
// listener serves it as /readyz. Safe from any goroutine.
func Ready(e *engine.Engine) error {
	if !e.Started() {
		return fmt.Errorf("%w: starting", ErrNotReady)
	}
	if !e.Online() {
		return fmt.Errorf("%w: no queues bound (offline engine)", ErrNotReady)
	}
	select {
	case <-e.Done():
		if err := e.Err(); err != nil {
			return fmt.Errorf("%w: queues stopped: %w", ErrNotReady, err)
		}
		return fmt.Errorf("%w: queues stopped", ErrNotReady)
	default:
	}
	if !e.RulesInstalled() {
		return nil // --no-rules or rules.install: false: someone else steers
	}
	if st, ok := e.GuardStatus(); ok && !st.Intact {
		why := st.LastChange
		if why == "" {
			why = st.LastError
		}
		return fmt.Errorf("%w: nftables table not as qguard installed it (%s)", ErrNotReady, why)
	}
	return nil
}
