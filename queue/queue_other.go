//go:build !linux

package queue

import "context"

// Queues is a set of bound queues; it exists only on Linux.
type Queues struct{}

// Open fails: nfnetlink_queue exists only on Linux.
func Open(cfg *Config) (*Queues, error) { return nil, ErrUnsupported }

// Run fails on this platform.
func (q *Queues) Run(ctx context.Context, h Handler) error { return ErrUnsupported }

// Close does nothing on this platform.
func (q *Queues) Close() error { return nil }

// Stats returns nothing on this platform.
func (q *Queues) Stats() []Stats { return nil }
