package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/testutil"
	"github.com/qguard/qguard/internal/topo"
	"github.com/qguard/qguard/rules"
)

// TestIntegrationGuardOff: with rules.guard: false a foreign change is
// logged and counted once, the table is left as it is and status says it
// is not intact; a reload switching the guard on re-installs it. A second
// engine for the same table in the namespace is refused with this process
// named, and the first one's table stays.
func TestIntegrationGuardOff(t *testing.T) {
	testutil.NeedRoot(t, "namespaces, nftables, NFQUEUE")
	top := testutil.NewTopology(t, &topo.Options{Prefix: "qgg"})
	yaml := func(guard bool) *config.File {
		return parseConfig(t, "guard-test.yaml", fmt.Sprintf("queue: {num: 3}\nrules: {table: qgguard, guard: %v}\npolicy: {default: accept}\n", guard))
	}
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	e := startEngine(t, top.Firewall, yaml(false), &Options{Logger: log})
	if s := e.Stats(); !s.RulesInstalled || !s.RulesIntact || s.RulesTampered != 0 {
		t.Fatalf("fresh engine: %+v", s)
	}
	if err := top.Firewall.Run("nft", "delete", "table", "inet", "qgguard"); err != nil {
		t.Fatal(err)
	}
	waitStats(e, func(s Stats) bool { return s.RulesTampered != 0 })
	time.Sleep(200 * time.Millisecond)
	s := e.Stats()
	if s.RulesTampered != 1 || s.RulesIntact || s.RulesRepaired != 0 || !strings.Contains(s.LastTamperChange, "deleted") {
		t.Fatalf("after delete with the guard off: %+v", s)
	}
	if _, err := top.Firewall.Output("nft", "list", "table", "inet", "qgguard"); err == nil {
		t.Fatal("table re-installed with rules.guard: false")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "rules.guard is off") {
		t.Errorf("no WARN line:\n%s", logs.String())
	}

	if err := e.Reload(yaml(true)); err != nil {
		t.Fatal(err)
	}
	waitStats(e, func(s Stats) bool { return s.RulesIntact })
	if s := e.Stats(); !s.RulesIntact || s.RulesTampered != 1 {
		t.Fatalf("after a reload with the guard on: %+v", s)
	}
	// The base chain: its jump to the policy generation goes.
	if err := top.Firewall.Run("nft", "flush", "chain", "inet", "qgguard", "forward"); err != nil {
		t.Fatal(err)
	}
	waitStats(e, func(s Stats) bool { return s.RulesRepaired != 0 })
	if s := e.Stats(); s.RulesTampered != 2 || s.RulesRepaired != 1 || !s.RulesIntact {
		t.Fatalf("flushed chain not repaired: %+v", s)
	}

	var e2 *Engine
	err := top.Firewall.Do(func() (err error) {
		e2, err = New(yaml(true), &Options{Logger: log, Queue: &QueueRange{Num: 9, Count: 2}})
		return err
	})
	if err == nil {
		e2.Close()
		t.Fatal("second engine for the same table started")
	}
	if !errors.Is(err, rules.ErrTableOwned) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d, queues 3", os.Getpid())) {
		t.Errorf("second engine: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if s := e.Stats(); s.RulesTampered != 2 || !s.RulesIntact {
		t.Errorf("refused engine disturbed the table: %+v", s)
	}
	// A change Apply does not undo (a base chain's policy: base chains are
	// kept, not re-created) is reported once, not "repaired" every second.
	if err := top.Firewall.Run("nft", "add", "chain", "inet", "qgguard", "forward", "{ policy drop; }"); err != nil {
		t.Fatal(err)
	}
	waitStats(e, func(s Stats) bool { return s.RulesRepairFailed != 0 })
	time.Sleep(1500 * time.Millisecond) // past the guard's retry
	if s := e.Stats(); s.RulesTampered != 3 || s.RulesRepairFailed != 1 || s.RulesIntact || !strings.Contains(s.RulesGuardError, "policy") {
		t.Errorf("policy change: %+v", s)
	}
	if n := strings.Count(logs.String(), "did not undo"); n != 1 {
		t.Errorf("%d lines about the change Apply cannot undo:\n%s", n, logs.String())
	}
	// Put right by hand: intact again, not counted as another change.
	if err := top.Firewall.Run("nft", "add", "chain", "inet", "qgguard", "forward", "{ policy accept; }"); err != nil {
		t.Fatal(err)
	}
	waitStats(e, func(s Stats) bool { return s.RulesIntact })
	if s := e.Stats(); s.RulesTampered != 3 || !s.RulesIntact {
		t.Errorf("policy put right by hand: %+v", s)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// The claim goes with Close: a new engine may take the table.
	if err := top.Firewall.Do(func() (err error) {
		e2, err = New(yaml(true), &Options{Logger: log})
		return err
	}); err != nil {
		t.Fatalf("table not free after Close: %v", err)
	}
	e2.Close()
}
