package rules

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/names"
)

// noteNameSets remembers which name sets the generation just installed
// has. The caller holds mu.
func (m *Manager) noteNameSets(used map[string]bool) {
	m.nameSets = map[string]bool{}
	for n := range used {
		if isNameSet(n) {
			m.nameSets[n] = true
		}
	}
}

// AddBinding adds bindings to the name sets of the generation in force:
// each address to the sets of every rule whose DstNames or SrcNames match
// the binding's name, with the binding's remaining lifetime as the
// element's timeout. An address already there gets the new timeout
// (kernels since 6.13 update it). Rules without name sets, and mode
// QueueAll, add nothing. One transaction for all of bs.
func (m *Manager) AddBinding(bs []names.Binding) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.nameSets) == 0 || m.cfg.Policy == nil {
		return nil
	}
	c, err := m.dial()
	if err != nil {
		return fmt.Errorf("add name bindings: %w", err)
	}
	t := inetTable(m.cfg.Table)
	gen, n := m.genNumber(), 0
	now := time.Now()
	for i := range m.cfg.Policy.Rules {
		r := &m.cfg.Policy.Rules[i]
		for _, l := range r.nameLists() {
			for _, v6 := range []bool{false, true} {
				name := nameSetName(i, l.src, v6, gen)
				if !m.nameSets[name] {
					continue
				}
				el := nameElems(bs, l.m, v6, now)
				if len(el) == 0 {
					continue
				}
				typ := nftables.TypeIPAddr
				if v6 {
					typ = nftables.TypeIP6Addr
				}
				if err := c.SetAddElements(&nftables.Set{Table: t, Name: name, KeyType: typ, HasTimeout: true}, el); err != nil {
					return fmt.Errorf("add name bindings to %s: %w", name, err)
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = ErrNotInstalled
		}
		return fmt.Errorf("add name bindings: %w", err)
	}
	return nil
}

// genNumber is the generation in force, from its chains' names. The
// caller holds mu.
func (m *Manager) genNumber() uint64 {
	for _, name := range m.gen {
		if _, n, ok := parseGen(name); ok {
			return n
		}
	}
	return 0
}
