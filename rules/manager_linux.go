package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
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
	// After an install: the table's base chains (in use or emptied) and
	// the current generation's chains, for Chains.
	bases, gen []string
	want       *tableState // the table as the last own change left it (guard_linux.go)
	// nameSets are the current generation's name sets (names_linux.go).
	nameSets map[string]bool
	// hooks are the current generation's hook chains ("<hook>_g<n>").
	hooks []string
	// blocking says the hook chains hold the block set lookups: from the
	// first install that finds a reason (a policy rule with block_source,
	// elements left in the sets) or the first BlockSource, which adds
	// them, for the Manager's life.
	blocking bool
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

// NewProbed is New with the kernel probed already: caps is what ProbeNS
// found in the namespace cfg.NetNS names, so a daemon that probes before
// it binds its queues (to fail early) does not ask the kernel twice.
func NewProbed(cfg *Config, caps Capabilities) (*Manager, error) {
	n, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return newManager(n, caps, dialer(n.NetNS))
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

// Apply installs the table: its sets, a base chain per hook and the rules
// in a first generation of regular chains. A table of the same name left
// by an earlier run (of this or the previous layout) is taken over by a
// generation switch, like Replace, without unregistering a hook; its block
// set entries survive.
func (m *Manager) Apply() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.install(m.cfg, "", false); err != nil {
		return fmt.Errorf("apply rules: %w", err)
	}
	m.record()
	return nil
}

// Replace switches to cfg (reload) by a generation switch (see install and
// the package documentation): every packet meets the complete old policy
// or the complete new one, once, and no hook is unregistered, so no queued
// packet is lost. Block set entries survive unless the table is renamed.
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
	switched, err := m.install(n, m.cfg.Table, false)
	if switched {
		m.cfg = n
	} else {
		m.impl = oldImpl
	}
	// A failed switch rolls back: either way the table is our doing.
	m.record()
	if err != nil {
		return fmt.Errorf("replace rules: %w", err)
	}
	return nil
}

// SteerAway prepares shutdown: with Bypass it switches to a generation
// whose queue rules accept instead, so no new packet is queued while the
// handler drains and unbinds; fail-closed configurations (no Bypass) keep
// queueing, and the kernel drops what no handler takes. Offload and block
// rules stay.
func (m *Manager) SteerAway() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.cfg.Bypass {
		return nil
	}
	if _, err := m.install(m.cfg, "", true); err != nil {
		return fmt.Errorf("steer away: %w", err)
	}
	m.record()
	return nil
}

// Chains returns, sorted, the names of the chains qguard's table holds
// after the last successful Apply, Replace or SteerAway: every base chain
// (the ones in use and those emptied, kept until Remove) and the current
// generation's regular chains. It is nil before Apply and after Remove.
func (m *Manager) Chains() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.bases)+len(m.gen) == 0 {
		return nil
	}
	out := append(append([]string(nil), m.bases...), m.gen...)
	sort.Strings(out)
	return out
}

// Remove deletes qguard's table and nothing else. Removing a table that is
// not there is not an error.
func (m *Manager) Remove() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bases, m.gen, m.hooks = nil, nil, nil
	defer m.record()
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
	arm := !m.blocking && len(m.hooks) > 0
	if arm {
		// The first block: its element and the lookups go in one
		// transaction, under the lock, so no generation switch comes
		// between and the element never sits in a set nothing reads.
		defer m.mu.Unlock()
	} else {
		m.mu.Unlock()
	}
	c, err := m.dial()
	if err != nil {
		return fmt.Errorf("block source %s: %w", a, err)
	}
	t := inetTable(table)
	if arm {
		for _, name := range m.hooks {
			ch := &nftables.Chain{Name: name, Table: t}
			// Each goes to the chain's top: block6 first, so block4 leads.
			c.InsertRule(blockRule(t, ch, true))
			c.InsertRule(blockRule(t, ch, false))
		}
	}
	s4, s6 := blockSets(t, timeout)
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
	if arm {
		m.blocking = true
		m.record()
	}
	return nil
}

// needBlocks reports whether the generation install builds for cfg needs
// the block set lookups: they were added before, the policy can block, or
// the sets hold elements (a table taken over from an earlier run).
func (m *Manager) needBlocks(c *nftables.Conn, t *nftables.Table, cfg *Config, sets map[string]bool) (bool, error) {
	if m.blocking || cfg.canBlock() {
		return true, nil
	}
	s4, s6 := blockSets(t, cfg.BlockSetTimeout)
	for _, s := range []*nftables.Set{s4, s6} {
		if !sets[s.Name] {
			continue
		}
		el, err := c.GetSetElements(s)
		if err != nil {
			return false, fmt.Errorf("list set %s: %w", s.Name, err)
		}
		if len(el) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// install brings table cfg.Table to cfg by a generation switch, in three
// transactions that each leave one complete policy in force (see the
// package documentation, "Atomicity"):
//
//  1. the new generation's regular chains "<hook>_g<n>", with all rules,
//     and its steering sets are added beside the old generation, and so are
//     base chains for hooks that have none yet, empty. Nothing jumps to the
//     new chains yet, and it must not: interval sets (port ranges, address
//     prefixes: rbtree and pipapo backends) publish their elements in the
//     set's commit callback, which the kernel runs after it has switched
//     the rule generation, so a rule that looks up a set new in the same
//     transaction misses for a moment (found by experiment on Linux 6.18,
//     see TestIntegrationReplaceNoWindow);
//  2. every base chain is flushed and given the one rule that jumps to the
//     new generation; base chains no hook of cfg uses are only flushed.
//     nft_do_chain reads the rule generation once per base chain and
//     follows jumps in it, so a packet meets either the old jump and the
//     old rules or the new jump and the new rules;
//  3. the chains and steering sets of every earlier generation are
//     deleted: regular chains, so no hook is unregistered.
//
// Base chains are never deleted while qguard runs: deleting one
// unregisters its hook, and the kernel then drops every packet queued in
// every queue of the namespace (nf_queue_nf_hook_drop). A hook that
// leaves the configuration, or moves to another priority, keeps its old
// chain, empty (policy accept), until Remove. The same steps take over a
// table left by an earlier run, whether of this layout or of the previous
// one with the rules in the base chains: matching base chains are kept and
// refilled, the rest emptied, stale generations deleted.
//
// switched reports whether the new generation is in force; it is while
// err is not nil only when deleting oldTable (not "" and not cfg.Table,
// deleted once the new table is in force) failed. A failed step 3 is no
// error: nothing refers to what it leaves, and the next install deletes it.
func (m *Manager) install(cfg *Config, oldTable string, steerAway bool) (switched bool, err error) {
	c, err := m.dial()
	if err != nil {
		return false, err
	}
	t := inetTable(cfg.Table)
	chains, sets, err := current(c, t)
	if err != nil {
		return false, err
	}
	gen := nextGen(chains, sets)
	hookOf, added := planBases(t, cfg, chains)

	blocks, err := m.needBlocks(c, t, cfg, sets)
	if err != nil {
		return false, err
	}
	tab := c.AddTable(t)
	b := m.builder(c, cfg, tab, sets, gen)
	b.blocks = blocks
	if err := b.addSets(); err != nil {
		return false, err
	}
	for _, ch := range added {
		c.AddChain(ch)
	}
	var fresh, rates []*nftables.Chain
	if cfg.Mode == KernelFirst {
		// Before the chains that jump to them; deleted after them.
		if rates, err = b.rateChains(); err != nil {
			return false, err
		}
	}
	for _, h := range cfg.Hooks {
		var pol *nftables.Chain
		if cfg.Mode == KernelFirst {
			// Added before the chain that jumps to it; deleted after it
			// (sorted names: "<hook>_g<n>" < "<hook>_policy_g<n>").
			pol = c.AddChain(&nftables.Chain{Name: b.policyChainName(h.Name), Table: tab})
			if err := b.policyRules(pol, h.Name, steerAway); err != nil {
				return false, err
			}
		}
		ch := c.AddChain(&nftables.Chain{Name: genName(h.Name, gen), Table: tab})
		fresh = append(fresh, ch)
		if err := b.chainRules(ch, h.Name, steerAway); err != nil {
			return false, err
		}
		if pol != nil {
			fresh = append(fresh, pol)
		}
	}
	fresh = append(fresh, rates...)
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("add generation %d: %w", gen, err)
	}
	for _, ch := range added {
		chains[ch.Name] = ch
	}
	m.bases = nil
	for _, name := range sortedNames(chains) {
		ch := chains[name]
		if !isBase(ch) {
			continue
		}
		m.bases = append(m.bases, name)
		c.FlushChain(ch)
		if hook, ok := hookOf[name]; ok {
			b.jump(ch, genName(hook, gen), gen)
		}
	}
	if err := c.Flush(); err != nil {
		// Back to the old generation alone; a leftover goes next time.
		delChains(c, fresh)
		for _, name := range sortedNames(b.used) {
			c.DelSet(&nftables.Set{Table: tab, Name: name})
		}
		_ = c.Flush()
		return false, fmt.Errorf("switch to generation %d: %w", gen, err)
	}
	m.gen = m.gen[:0]
	for _, ch := range fresh {
		m.gen = append(m.gen, ch.Name)
	}
	m.hooks = m.hooks[:0]
	for _, h := range cfg.Hooks {
		m.hooks = append(m.hooks, genName(h.Name, gen))
	}
	m.blocking = blocks
	m.noteNameSets(b.used)
	var old []*nftables.Chain
	for _, name := range sortedNames(chains) {
		if ch := chains[name]; !isBase(ch) {
			old = append(old, ch)
		}
	}
	delChains(c, old)
	n := len(old)
	for _, name := range sortedNames(sets) {
		if genSet(name) {
			c.DelSet(&nftables.Set{Table: tab, Name: name})
			n++
		}
	}
	if n > 0 {
		// The new policy is in force whatever this returns: a leftover
		// is unreferenced and the next install deletes it.
		_ = c.Flush()
	}
	if oldTable != "" && oldTable != cfg.Table {
		// The new table is in force; only now the old one goes (this
		// unregisters its hooks: a table rename needs no reload-safe path,
		// the daemon changes the table name only across a restart).
		c.DelTable(inetTable(oldTable))
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return true, fmt.Errorf("delete table %s: %w", oldTable, err)
		}
	}
	return true, nil
}

// planBases picks the base chain of every hook of cfg: an installed one on
// the same hook and priority (the one named after the hook first), else a
// new one, returned in added. hookOf maps the chosen chains to their hooks.
func planBases(t *nftables.Table, cfg *Config, chains map[string]*nftables.Chain) (hookOf map[string]string, added []*nftables.Chain) {
	hookOf = map[string]string{}
	taken := func(name string) bool {
		_, ok := chains[name]
		for _, ch := range added {
			ok = ok || ch.Name == name
		}
		return ok
	}
	for _, h := range cfg.Hooks {
		pick := ""
		for _, name := range sortedNames(chains) {
			if onHook(chains[name], h) && (pick == "" || name == h.Name) {
				pick = name
			}
		}
		if pick == "" {
			ch := baseChain(t, h)
			ch.Name = baseName(h, taken)
			added = append(added, ch)
			pick = ch.Name
		}
		hookOf[pick] = h.Name
	}
	return hookOf, added
}

func delChains(c *nftables.Conn, chs []*nftables.Chain) {
	for _, ch := range chs {
		c.FlushChain(ch)
		c.DelChain(ch)
	}
}

// builder returns a builder for one transaction on c, for generation gen;
// sets names the sets the table holds.
func (m *Manager) builder(c *nftables.Conn, cfg *Config, t *nftables.Table, sets map[string]bool, gen uint64) *builder {
	return &builder{c: c, cfg: cfg, impl: m.impl, caps: m.caps, t: t, sets: sets, used: map[string]bool{}, gen: gen}
}

// addSets adds the block and drop-flow sets the table lacks. They belong
// to no generation: their elements outlive every reload.
func (b *builder) addSets() error {
	s4, s6 := blockSets(b.t, b.cfg.BlockSetTimeout)
	d4, d6 := dropFlowSets(b.t, b.cfg.FlowTimeout)
	for _, s := range []*nftables.Set{s4, s6, d4, d6} {
		if !b.sets[s.Name] {
			if err := b.c.AddSet(s, nil); err != nil {
				return fmt.Errorf("add set %s: %w", s.Name, err)
			}
		}
	}
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
