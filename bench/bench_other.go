//go:build !linux

package bench

import (
	"context"
	"errors"
)

// ErrUnsupported is returned by Run where network namespaces and
// nfnetlink_queue do not exist.
var ErrUnsupported = errors.New("bench: needs Linux")

// Run is Linux-only.
func Run(ctx context.Context, cfg *Config) (*Report, error) { return nil, ErrUnsupported }

func usableCPUs() []int { return nil }

// QGuardPeer is Linux-only.
func QGuardPeer(args []string) error { return ErrUnsupported }

// AllModes lists no mode where Run cannot run.
func AllModes(c *Config) []Mode { return nil }

type (
	env     struct{}
	modeRun struct{}
	handler interface{}
)
