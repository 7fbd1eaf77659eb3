package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Manager installs, replaces and removes qguard's table.
type Manager struct {
	mu   sync.Mutex
	cfg  *Config
	caps Capabilities
	impl QueueImpl
	dial func() (*nftables.Conn, error)
}

// New validates cfg (nil: DefaultConfig), probes the kernel and picks the
// queue expression. It installs nothing; call Apply.
func New(cfg *Config) (*Manager, error) {
	n, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	dial := dialer(n.NetNS)
	caps, err := probe(dial)
	if err != nil {
		return nil, err
	}
	return newManager(n, caps, dial)
}

// newManager is New without the probe, for tests with a fake kernel.
func newManager(n *Config, caps Capabilities, dial func() (*nftables.Conn, error)) (*Manager, error) {
	m := &Manager{cfg: n, caps: caps, dial: dial}
	if err := m.pick(n); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) pick(n *Config) error {
	switch {
	case n.Queue == QueueAuto:
		impl, err := m.caps.Best()
		if err != nil {
			return err
		}
		m.impl = impl
	case n.Queue == QueueNative && !m.caps.NativeQueue:
		return fmt.Errorf("use native queue expression: %w: %s", ErrNoQueueSupport, m.caps.NativeErr)
	case n.Queue == QueueCompat && !m.caps.CompatQueue:
		return fmt.Errorf("use compat NFQUEUE target: %w: %s", ErrNoQueueSupport, m.caps.CompatErr)
	default:
		m.impl = n.Queue
	}
	return nil
}

// Capabilities returns the probe results.
func (m *Manager) Capabilities() Capabilities { return m.caps }

// QueueImpl returns the queue expression the rules use.
func (m *Manager) QueueImpl() QueueImpl {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.impl
}

// Config returns a copy of the normalized configuration in force.
func (m *Manager) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.cfg
}

// Apply installs the table, its sets and chains in one transaction. A table
// of the same name left by an earlier run is brought to the configured
// state the way Replace does it; its block set entries survive.
func (m *Manager) Apply() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.install(m.cfg, "", false); err != nil {
		return fmt.Errorf("apply rules: %w", err)
	}
	return nil
}

// Replace switches to cfg (reload) make-before-break (see install and the
// package documentation): every packet meets the complete old policy or
// the complete new one, never neither, though while both are installed a
// packet may be queued twice. Block set entries survive unless the table
// is renamed.
func (m *Manager) Replace(cfg *Config) error {
	n, err := cfg.normalize()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	oldImpl := m.impl
	if err := m.pick(n); err != nil {
		return err
	}
	if n.NetNS != m.cfg.NetNS {
		m.impl = oldImpl
		return fmt.Errorf("replace rules: %w: the network namespace cannot change", ErrInvalidConfig)
	}
	if err := m.install(n, m.cfg.Table, false); err != nil {
		m.impl = oldImpl
		return fmt.Errorf("replace rules: %w", err)
	}
	m.cfg = n
	return nil
}

// SteerAway prepares shutdown: with Bypass it replaces the queue rules with
// accept (make-before-break, like Replace), so no new packet is queued
// while the handler drains and unbinds; fail-closed configurations (no Bypass) keep queueing,
// and the kernel drops what no handler takes. Offload and block rules stay.
func (m *Manager) SteerAway() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.cfg.Bypass {
		return nil
	}
	if err := m.install(m.cfg, "", true); err != nil {
		return fmt.Errorf("steer away: %w", err)
	}
	return nil
}

// Remove deletes qguard's table and nothing else. Removing a table that is
// not there is not an error.
func (m *Manager) Remove() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return removeTable(m.dial, m.cfg.Table)
}

// RemoveTable deletes the inet table name in the namespace netnsFd (0: the
// caller's), for `qguard rules flush` without a running daemon.
func RemoveTable(netnsFd int, name string) error {
	if name == "" {
		name = "qguard"
	}
	return removeTable(dialer(netnsFd), name)
}

func removeTable(dial func() (*nftables.Conn, error), name string) error {
	c, err := dial()
	if err != nil {
		return fmt.Errorf("remove table %s: %w", name, err)
	}
	c.DelTable(inetTable(name))
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove table %s: %w", name, err)
	}
	return nil
}

// BlockSource drops packets from a in every qguard chain for d (0: the
// set's default timeout), without a queue round trip. Adding an address
// that is already blocked keeps its entry.
func (m *Manager) BlockSource(a netip.Addr, d time.Duration) error {
	a = a.Unmap()
	if !a.IsValid() {
		return fmt.Errorf("block source: %w: invalid address", ErrInvalidConfig)
	}
	if d < 0 || (d > 0 && d < time.Millisecond) {
		return fmt.Errorf("block source %s: %w: duration %v", a, ErrInvalidConfig, d)
	}
	m.mu.Lock()
	table := m.cfg.Table
	timeout := m.cfg.BlockSetTimeout
	m.mu.Unlock()
	c, err := m.dial()
	if err != nil {
		return fmt.Errorf("block source %s: %w", a, err)
	}
	s4, s6 := blockSets(inetTable(table), timeout)
	s := s4
	if a.Is6() {
		s = s6
	}
	if err := c.SetAddElements(s, []nftables.SetElement{{Key: a.AsSlice(), Timeout: d}}); err != nil {
		return fmt.Errorf("block source %s: %w", a, err)
	}
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = ErrNotInstalled
		}
		return fmt.Errorf("block source %s: %w", a, err)
	}
	return nil
}

// install brings the table to cfg. oldTable, when different from
// cfg.Table, is deleted once the new table is complete.
//
// A table that has chains already is changed make-before-break, in three
// transactions, because one transaction is not enough to swap a policy
// without a window (found by experiment on Linux 6.18, see
// TestIntegrationReplaceNoWindow):
//
//   - interval sets (port ranges, address prefixes: rbtree and pipapo
//     backends) publish their elements in the set's commit callback, which
//     the kernel runs after it has switched the rule generation; a rule
//     that is new in the transaction and looks up a set that is new in it
//     misses for that moment, and the packet falls through to the chain's
//     accept policy;
//   - nft_do_chain reads the generation once per base chain, so a packet
//     that crosses two of them while the generation switches can see a new
//     chain's empty old-generation rules and then an old chain's emptied
//     new-generation rules.
//
// So every transaction leaves one complete, unchanged copy of the policy
// on each hook: (1) shadow chains "<hook>_reload" with the new rules are
// added beside the old chains; (2) the chains named after the hooks are
// refilled, or re-created where the hook or priority changed; (3) the
// shadow chains are deleted. While both copies are installed a packet can
// be queued twice (accepted by user space in one chain, queued again by
// the other); none passes unqueued.
func (m *Manager) install(cfg *Config, oldTable string, steerAway bool) error {
	c, err := m.dial()
	if err != nil {
		return err
	}
	t := inetTable(cfg.Table)
	chains, sets, err := current(c, t)
	if err != nil {
		return err
	}
	if len(chains) == 0 {
		// Nothing installed here: nothing to keep in force meanwhile.
		b := m.builder(c, cfg, t, sets, nil)
		if err := b.fill(chains, steerAway); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
	} else if err := m.swap(c, cfg, t, chains, sets, steerAway); err != nil {
		return err
	}
	if oldTable != "" && oldTable != cfg.Table {
		// The new table is complete; only now the old one goes.
		c.DelTable(inetTable(oldTable))
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete table %s: %w", oldTable, err)
		}
	}
	return nil
}

// shadowSuffix names the chains that hold the new rules during a swap.
const shadowSuffix = "_reload"

// swap is install's make-before-break path for a table with chains.
func (m *Manager) swap(c *nftables.Conn, cfg *Config, t *nftables.Table, chains map[string]*nftables.Chain, sets map[string]bool, steerAway bool) error {
	// Shadow chains left by a swap that failed half way go first, in a
	// transaction of their own (the chains named after hooks are intact).
	var stale []*nftables.Chain
	for name, ch := range chains {
		if strings.HasSuffix(name, shadowSuffix) {
			stale = append(stale, ch)
			delete(chains, name)
		}
	}
	if len(stale) > 0 {
		delChains(c, stale)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete stale chains: %w", err)
		}
	}
	tab := c.AddTable(t)
	b1 := m.builder(c, cfg, tab, sets, nil)
	if err := b1.addSets(); err != nil {
		return err
	}
	var shadows []*nftables.Chain
	for _, h := range cfg.Hooks {
		ch := baseChain(tab, h)
		ch.Name = h.Name + shadowSuffix
		c.AddChain(ch)
		shadows = append(shadows, ch)
		if err := b1.chainRules(ch, h.Name, steerAway); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add new chains: %w", err)
	}
	// The steering sets filled in step 1 keep their elements. (Those are
	// the interface-name sets, hash sets whose elements the kernel switches
	// with the rule generation.)
	b2 := m.builder(c, cfg, tab, sets, b1.used)
	if err := b2.fill(chains, steerAway); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		delChains(c, shadows)
		_ = c.Flush() // back to the old rules; a leftover is removed next time
		return err
	}
	delChains(c, shadows)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete chains %s*: %w", shadows[0].Name, err)
	}
	return nil
}

func delChains(c *nftables.Conn, chs []*nftables.Chain) {
	for _, ch := range chs {
		c.FlushChain(ch)
		c.DelChain(ch)
	}
}

// builder returns a builder for one transaction on c; used, when not nil,
// names the steering sets an earlier transaction of the same swap filled.
func (m *Manager) builder(c *nftables.Conn, cfg *Config, t *nftables.Table, sets, used map[string]bool) *builder {
	if used == nil {
		used = map[string]bool{}
	}
	return &builder{c: c, cfg: cfg, impl: m.impl, t: t, sets: sets, used: used}
}

// addSets adds the block and drop-flow sets the table lacks.
func (b *builder) addSets() error {
	s4, s6 := blockSets(b.t, b.cfg.BlockSetTimeout)
	d4, d6 := dropFlowSets(b.t, b.cfg.FlowTimeout)
	for _, s := range []*nftables.Set{s4, s6, d4, d6} {
		if !b.sets[s.Name] {
			if err := b.c.AddSet(s, nil); err != nil {
				return fmt.Errorf("add set %s: %w", s.Name, err)
			}
			b.sets[s.Name] = true
		}
	}
	return nil
}

// fill queues the messages that bring the chains named after hooks to
// b.cfg: chains no longer configured, or whose hook or priority changed,
// are deleted (and re-created), the others flushed and refilled.
func (b *builder) fill(chains map[string]*nftables.Chain, steerAway bool) error {
	b.t = b.c.AddTable(b.t)
	if err := b.addSets(); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, h := range b.cfg.Hooks {
		want[h.Name] = true
	}
	for name, ch := range chains {
		if !want[name] || !sameHook(ch, b.cfg) {
			b.c.FlushChain(ch)
			b.c.DelChain(ch)
			delete(chains, name)
		}
	}
	for _, h := range b.cfg.Hooks {
		ch, ok := chains[h.Name]
		if ok {
			b.c.FlushChain(ch)
		} else {
			ch = b.c.AddChain(baseChain(b.t, h))
		}
		if err := b.chainRules(ch, h.Name, steerAway); err != nil {
			return err
		}
	}
	b.dropUnusedSets()
	return nil
}

// current lists the chains and set names of table t; both empty when the
// table does not exist.
func current(c *nftables.Conn, t *nftables.Table) (map[string]*nftables.Chain, map[string]bool, error) {
	chains := map[string]*nftables.Chain{}
	sets := map[string]bool{}
	tables, err := c.ListTablesOfFamily(t.Family)
	if err != nil {
		return nil, nil, fmt.Errorf("list tables: %w", err)
	}
	found := false
	for _, x := range tables {
		found = found || x.Name == t.Name
	}
	if !found {
		return chains, sets, nil
	}
	all, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range all {
		if ch.Table.Name == t.Name {
			chains[ch.Name] = ch
		}
	}
	ss, err := c.GetSets(t)
	if err != nil {
		return nil, nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range ss {
		sets[s.Name] = true
	}
	return chains, sets, nil
}

// sameHook reports whether an installed chain matches the configured hook
// and priority of the same name (both are immutable in the kernel).
func sameHook(ch *nftables.Chain, cfg *Config) bool {
	for _, h := range cfg.Hooks {
		if h.Name != ch.Name {
			continue
		}
		return ch.Hooknum != nil && uint32(*ch.Hooknum) == hookNums[h.Name] &&
			ch.Priority != nil && int32(*ch.Priority) == h.Priority && ch.Type == nftables.ChainTypeFilter
	}
	return false
}
