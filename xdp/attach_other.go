//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package xdp

import (
	"fmt"
	"time"
)

// Probe reports ErrUnsupported: XDP needs Linux, and the committed object
// is little-endian BPF.
func Probe() error {
	return fmt.Errorf("xdp: probe: not built for this platform: %w", ErrUnsupported)
}

// New reports ErrUnsupported on this platform.
func New(cfg *Config) (*Filter, error) { return nil, Probe() }

// Attach reports ErrUnsupported on this platform.
func Attach(cfg *Config) (*Filter, error) { return nil, Probe() }

var start = time.Now()

func monoNow() int64 { return int64(time.Since(start)) }
