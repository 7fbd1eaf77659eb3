package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Traffic is the kind of load a mode runs under.
type Traffic string

// Traffic kinds.
const (
	UDP64  Traffic = "udp64"  // 64-byte IP packets, UDP
	UDPMTU Traffic = "udpmtu" // 1500-byte IP packets, UDP
	TCP    Traffic = "tcp"    // a few bulk TCP streams
	Conn   Traffic = "conn"   // many short TCP connections
	Flood  Traffic = "flood"  // 64-byte UDP from one blocked source
)

// isTCP says whether the traffic is TCP (steered as TCP into the queues).
func (t Traffic) isTCP() bool { return t == TCP || t == Conn }

// Groups of modes, as Config.Modes selects them.
const (
	GroupLimit  = "limit"  // kernel forwarding, no queue
	GroupPeer   = "peer"   // other NFQUEUE handlers
	GroupQGuard = "qguard" // qguard's queue engine as a library
	GroupFlood  = "flood"  // blocked-source flood: who drops it, at what cost
)

// Mode is one way of forwarding the load, measured as one row of the report.
// The exported fields describe it; start and measure are what it does.
type Mode struct {
	Name    string
	Group   string
	Family  Family
	Traffic Traffic
	Queues  int    // queues the handler binds; 0 when none
	About   string // one line for the table's legend

	// start launches the mode's handler, bound and ready, on queues
	// q..q+Queues-1; nil means none (kernel forwarding). It returns an
	// error made by skipf when the mode cannot run here.
	start startFunc
	// measure runs the mode's phases with the handler running; nil means
	// measureForward (throughput, latency, drain, cost at load).
	measure measureFunc
	// steer: the harness steers the traffic into the mode's queues (a
	// daemon installs its own table instead).
	steer bool
	// drain: the mode has a drain phase (a handler process that can be
	// stopped, on UDP traffic).
	drain bool
	// cost: the mode has the cost-at-load phase.
	cost bool
	// gso: the handler asks the kernel for GSO super-packets whole
	// (NFQA_CFG_F_GSO), as the daemon does by default, instead of having
	// them segmented before they are queued. The TCP variants set it;
	// the daemon always has it (queue.gso).
	gso bool
}

// startFunc starts a mode's handler on its first queue q.
type startFunc func(ctx context.Context, e *env, m *Mode, q uint16) (handler, error)

// measureFunc measures one run of a mode whose handler is running.
type measureFunc func(ctx context.Context, e *env, r *modeRun) (Sample, error)

// skipError says why a mode cannot run here; the report shows it as skipped.
type skipError struct{ why string }

func (s *skipError) Error() string { return s.why }

// skipf makes the error a startFunc returns for a mode that cannot run here.
func skipf(format string, args ...any) error {
	return &skipError{why: fmt.Sprintf(format, args...)}
}

// skipped returns the reason when err says the mode was skipped.
func skipped(err error) (string, bool) {
	var s *skipError
	if errors.As(err, &s) {
		return s.why, true
	}
	return "", false
}

// variant returns m under traffic t, named with suffix.
func (m Mode) variant(t Traffic, suffix string) Mode {
	m.Name += suffix
	m.Traffic = t
	m.drain = m.drain && !t.isTCP()
	m.cost = false // cost at load is measured on 64-byte packets
	m.gso = t.isTCP()
	return m
}

// SelectModes applies Config.Modes to AllModes.
func SelectModes(c *Config) ([]Mode, error) {
	all := AllModes(c)
	if c == nil || len(c.Modes) == 0 {
		return all, nil
	}
	var out []Mode
	for _, want := range c.Modes {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		found := false
		for _, m := range all {
			base, _, _ := strings.Cut(m.Name, ":")
			if m.Name == want || (!strings.Contains(want, ":") && base == want) || (want == m.Group) {
				found = true
				if !slices.ContainsFunc(out, func(o Mode) bool { return o.Name == m.Name }) {
					out = append(out, m)
				}
			}
		}
		if !found {
			names := make([]string, len(all))
			for i, m := range all {
				names[i] = m.Name
			}
			return nil, fmt.Errorf("select mode %q: %w (have %s, or a group: %s, %s, %s, %s, %s)", want, ErrUnknownMode,
				strings.Join(names, ", "), GroupLimit, GroupPeer, GroupQGuard, GroupDaemon, GroupFlood)
		}
	}
	// Keep report order.
	order := map[string]int{}
	for i, m := range all {
		order[m.Name] = i
	}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Name] < order[out[j].Name] })
	return out, nil
}
