package ruletest

import (
	"context"
	"errors"
	"net/netip"

	"github.com/qguard/qguard/internal/topo"
)

const defaultMarkMask = 0x00ff0000

func startEngine(ctx context.Context, t *topo.Topology, f *File) (firewall, error) {
	return nil, errors.New("TEMP: config package not available yet")
}

var _ = netip.Addr{}
