package engine

import (
	"fmt"

	"github.com/qguard/qguard/rules"
)

// claimTable makes this engine the table's only owner in its network
// namespace (rules.ClaimTable): a second daemon for the same table is
// refused with the holder named instead of taking the table over.
func claimTable(netnsFd int, set *settings) (*rules.Claim, error) {
	q := fmt.Sprint(set.queue.Num)
	if set.queue.Count > 1 {
		q = fmt.Sprintf("%d-%d", set.queue.Num, set.queue.Num+set.queue.Count-1)
	}
	c, err := rules.ClaimTable(netnsFd, set.rules.Table, q)
	if err != nil {
		return nil, fmt.Errorf("own nftables table %q: %w", set.rules.Table, err)
	}
	return c, nil
}

// startGuard watches the table for foreign changes (rules.Guard); it
// re-installs it when rules.guard is true and only reports otherwise.
// Called from Start with reloadMu held.
func (e *Engine) startGuard() error {
	if e.rules == nil {
		return nil
	}
	g, err := e.rules.Guard(&rules.GuardOptions{Repair: e.set.guardRules, Logger: e.log})
	if err != nil {
		return fmt.Errorf("guard nftables table %q: %w", e.set.rules.Table, err)
	}
	e.guard.Store(g)
	return nil
}

// guardStats fills the table's part of s.
func (e *Engine) guardStats(s *Stats) {
	s.QueueBypassed = e.bypassed()
	s.RulesIntact = e.rules != nil
	gd := e.guard.Load()
	if gd == nil {
		return
	}
	g := gd.Status()
	s.RulesIntact = e.rules != nil && g.Intact
	s.RulesTampered, s.RulesRepaired, s.RulesRepairFailed = g.Tampered, g.Repaired, g.RepairFailed
	s.LastTamper, s.LastTamperChange, s.RulesGuardError = g.LastTamper, g.LastChange, g.LastError
}
