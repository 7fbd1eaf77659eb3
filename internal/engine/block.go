package engine

import (
	"net/netip"
	"time"
)

// blockLoop installs the source blocks that rules ask for, off the packet
// path. XDP drops earliest, so it is used when attached; otherwise the
// nftables block sets. A source blocked recently is not sent again: a flood
// from one address would otherwise turn into a flood of netlink calls.
func (e *Engine) blockLoop() {
	defer close(e.blockDone)
	recent := map[netip.Addr]time.Time{}
	for {
		var req blockReq
		select {
		case <-e.blockStop:
			return
		case req = <-e.blockCh:
		}
		now := time.Now()
		if until, ok := recent[req.addr]; ok && now.Before(until) {
			continue
		}
		if len(recent) > 4096 {
			for a, until := range recent {
				if now.After(until) {
					delete(recent, a)
				}
			}
		}
		var err error
		switch {
		case e.xdp != nil:
			err = e.xdp.BlockSource(req.addr, req.ttl)
		case e.rules != nil:
			err = e.rules.BlockSource(req.addr, req.ttl)
		default:
			continue // offline or --no-rules without XDP: the rule's drop is all we can do
		}
		if err != nil {
			e.blockError.Add(1)
			e.log.Warn("block source failed", "src", req.addr, "ttl", req.ttl, "err", err)
			continue
		}
		recent[req.addr] = now.Add(req.ttl / 2)
		e.log.Info("blocked source", "src", req.addr, "ttl", req.ttl)
	}
}
