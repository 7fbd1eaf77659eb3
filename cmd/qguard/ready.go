package main

import (
	"fmt"

	"github.com/qguard/qguard/internal/service"
)

// ready is what /readyz asks: the engine's readiness, and not ready once a
// stop has begun (load balancers and orchestrators stop sending first).
func (d *daemon) ready() error {
	if d.stopping.Load() {
		return fmt.Errorf("%w: stopping", service.ErrNotReady)
	}
	d.mu.Lock()
	e := d.e
	d.mu.Unlock()
	if e == nil {
		return fmt.Errorf("%w: starting", service.ErrNotReady)
	}
	return service.Ready(e)
}
