package engine

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/verdict"
)

// checkFlowMemory refuses flow tables that together take more than the
// machine's memory (flows.max is bounded per queue by config; queue.count
// or --queue multiply it). They are allocated at start and fill as flows
// come, until the kernel's OOM killer would end the daemon mid-traffic.
func checkFlowMemory(set *settings) error {
	capacity := 0
	if set.pipeline != nil && set.pipeline.Flows != nil {
		capacity = set.pipeline.Flows.Capacity
	}
	per := verdict.FlowTableBytes(capacity)
	total := per * uint64(set.queue.Count)
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return nil // no figure to compare with
	}
	ram := uint64(si.Totalram) * uint64(si.Unit)
	if total <= ram {
		return nil
	}
	return fmt.Errorf("flow tables: %d queues of %s each (flows.max %d) take %s, more than this machine's %s of memory: %w; lower flows.max or the number of queues",
		set.queue.Count, config.FormatBytes(per), capacity, config.FormatBytes(total), config.FormatBytes(ram), ErrConfig)
}
