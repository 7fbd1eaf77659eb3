package xdp

import "fmt"

// Counter slots of the per-CPU counters array (the STAT_* enum in
// bpf/filter.c).
const (
	statPassed uint32 = iota
	statDroppedSrc
	statDroppedFlow
	statParseErr
	statExpired
	statNonIP
	statSlots
)

// Stats are the program's global counters, summed over CPUs, since load.
type Stats struct {
	// Passed counts every packet the program let through (XDP_PASS),
	// including the three kinds below.
	Passed uint64
	// DroppedSource and DroppedFlow count packets dropped by a source or
	// a flow block.
	DroppedSource, DroppedFlow uint64
	// ParseErrors counts truncated or malformed Ethernet/IP/L4 headers;
	// such packets pass and the stack deals with them.
	ParseErrors uint64
	// Expired counts packets that matched an expired block and passed.
	Expired uint64
	// NonIP counts frames that are neither IPv4 nor IPv6 (ARP, QinQ, ...).
	NonIP uint64
}

// Dropped is DroppedSource + DroppedFlow.
func (s Stats) Dropped() uint64 { return s.DroppedSource + s.DroppedFlow }

// Stats reads the global counters. After Close it returns the values read
// while closing; if a read fails (it only can when the map is gone) the
// counters that could not be read are zero.
func (f *Filter) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return f.final
	}
	s, _ := f.readStats()
	return s
}

func (f *Filter) readStats() (Stats, error) {
	var s Stats
	dst := [statSlots]*uint64{&s.Passed, &s.DroppedSource, &s.DroppedFlow, &s.ParseErrors, &s.Expired, &s.NonIP}
	var perCPU []uint64
	for slot := statPassed; slot < statSlots; slot++ {
		if err := f.counters.Lookup(slot, &perCPU); err != nil {
			return s, fmt.Errorf("xdp: read counter %d: %w", slot, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		*dst[slot] = sum
	}
	return s, nil
}
