package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// record remembers the table as an own change left it, for Verify. Called
// with m.mu held, after every successful change (Apply, Replace,
// SteerAway, Remove): holding the lock over the change and the listing is
// what tells own changes from foreign ones, not the pid of a notification.
func (m *Manager) record() {
	st, err := m.read()
	if err != nil {
		// Unknown: Verify takes the next listing as the reference.
		m.want = nil
		return
	}
	m.want = st
}

func (m *Manager) read() (*tableState, error) {
	c, err := m.dial()
	if err != nil {
		return nil, err
	}
	return readState(c, inetTable(m.cfg.Table))
}

// Verify compares the table with the state the Manager's last own change
// left and describes each difference (nil: intact). It holds the
// Manager's lock, so it never sees an own change half done.
func (m *Manager) Verify() ([]string, error) {
	d, _, _, err := m.verify()
	return d, err
}

// verify is Verify that also returns the reference and the table read.
func (m *Manager) verify() (diff []string, want, have *tableState, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	have, err = m.read()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("verify table %s: %w", m.cfg.Table, err)
	}
	if m.want == nil {
		m.want = have
		return nil, have, have, nil
	}
	return m.want.diff(have, m.cfg.Table), m.want, have, nil
}

// leftAfter compares what the last own change left with before, ignoring
// what a re-install changes by design (generation numbers, anonymous set
// names): a change Apply does not undo.
func (m *Manager) leftAfter(before *tableState) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if before == nil || m.want == nil {
		return nil
	}
	return before.shape().diff(m.want.shape(), m.cfg.Table)
}

// adopt makes have the reference, unless an own change recorded another
// one since old was read.
func (m *Manager) adopt(old, have *tableState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.want == old {
		m.want = have
	}
}

// GuardOptions configure Manager.Guard; the zero value is usable.
type GuardOptions struct {
	// Repair re-installs the table through Apply when it was changed;
	// without it changes are only logged and counted.
	Repair bool
	// Interval is the period of the fallback verify, for notifications
	// the kernel could not deliver (default 5s).
	Interval time.Duration
	Logger   *slog.Logger
}

// GuardStatus is what the guard has seen since it started.
type GuardStatus struct {
	// Intact: the last verify found the table as qguard left it.
	Intact bool
	// Tampered counts verifies that found a foreign change (a burst of
	// notifications, like one `nft flush ruleset`, is verified once).
	Tampered uint64
	// Repaired and RepairFailed count re-installs by result.
	Repaired, RepairFailed uint64
	// LastTamper and LastChange say when and what the last foreign change
	// was; LastError is the last failure to read or repair the table.
	LastTamper time.Time
	LastChange string
	LastError  string
	// Overruns counts lost notifications (ENOBUFS); each one is followed by
	// a full verify.
	Overruns uint64
}

// Guard watches the table: nftables notifications (multicast group
// NFNLGRP_NFTABLES) about it and a slow periodic verify each lead to
// Verify; a difference is logged at WARN and counted, and with Repair the
// table is re-installed by Apply. Stop it before SteerAway and Remove.
type Guard struct {
	m     *Manager
	o     GuardOptions
	table string
	conn  *netlink.Conn
	// gen asks for the ruleset generation (rulesetGen); lastGen is the
	// one read before the last verify that found the table intact, while
	// genOK. Loop goroutine only.
	gen     *netlink.Conn
	lastGen uint32
	genOK   bool
	kick    chan struct{}
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once

	// good is the state before a change Apply did not undo, while that
	// change is in the table; loop goroutine only.
	good *tableState

	mu sync.Mutex
	st GuardStatus
}

// guardDebounce is how long the guard waits for a burst of notifications
// (one batch sends one per object) to end before it verifies; guardBurst
// bounds the wait under a stream of changes.
const (
	guardDebounce = 30 * time.Millisecond
	guardBurst    = 200 * time.Millisecond
	guardRetry    = time.Second
)

// Guard starts guarding the table as the last Apply left it.
func (m *Manager) Guard(o *GuardOptions) (*Guard, error) {
	g := &Guard{m: m, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if o != nil {
		g.o = *o
	}
	if g.o.Interval <= 0 {
		g.o.Interval = 5 * time.Second
	}
	if g.o.Logger == nil {
		g.o.Logger = slog.Default()
	}
	cfg := m.Config()
	g.table = cfg.Table
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("watch nftables: %w", err)
	}
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		conn.Close()
		return nil, fmt.Errorf("watch nftables: join group: %w", err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	g.conn = conn
	// Without it every periodic verify reads the whole table.
	if gc, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS}); err == nil {
		g.gen = gc
	}
	g.st.Intact = true
	g.done.Add(2)
	go g.watch()
	go g.loop()
	g.poke()
	return g, nil
}

// Stop ends the guard and waits for it. It is idempotent.
func (g *Guard) Stop() {
	if g == nil {
		return
	}
	g.once.Do(func() {
		close(g.stop)
		g.conn.Close()
		g.done.Wait()
		if g.gen != nil {
			g.gen.Close()
		}
	})
}

// SetRepair switches re-installing on or off (rules.guard on reload).
func (g *Guard) SetRepair(on bool) {
	g.mu.Lock()
	g.o.Repair = on
	g.mu.Unlock()
}

func (g *Guard) repair() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.o.Repair
}

// Status returns a snapshot.
func (g *Guard) Status() GuardStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}

func (g *Guard) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

func (g *Guard) stopped() bool {
	select {
	case <-g.stop:
		return true
	default:
		return false
	}
}

// watch reads notifications and pokes the loop for those about the table.
func (g *Guard) watch() {
	defer g.done.Done()
	for {
		msgs, err := g.conn.Receive()
		if g.stopped() {
			return
		}
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				g.mu.Lock()
				g.st.Overruns++
				g.mu.Unlock()
			} else {
				time.Sleep(100 * time.Millisecond) // no busy loop on a broken socket
			}
			g.poke()
			continue
		}
		for _, msg := range msgs {
			if aboutTable(msg, g.table) {
				g.poke()
				break
			}
		}
	}
}

// aboutTable says whether an nf_tables notification concerns inet table
// name: every object message carries its table as attribute 1. Element
// changes of the block and drop-flow sets (the daemon's and the kernel's
// own, all the time) are not.
func aboutTable(msg netlink.Message, name string) bool {
	t := uint16(msg.Header.Type)
	if t>>8 != unix.NFNL_SUBSYS_NFTABLES || len(msg.Data) < 4 {
		return false
	}
	typ := t & 0xff
	if typ == unix.NFT_MSG_NEWGEN || msg.Data[0] != unix.NFPROTO_INET {
		return false
	}
	ad, err := netlink.NewAttributeDecoder(msg.Data[4:])
	if err != nil {
		return true // cannot tell: verify
	}
	var table, set string
	for ad.Next() {
		switch ad.Type() {
		case 1:
			table = ad.String()
		case 2:
			set = ad.String()
		}
	}
	if table != name {
		return false
	}
	if typ == unix.NFT_MSG_NEWSETELEM || typ == unix.NFT_MSG_DELSETELEM {
		switch set {
		case Block4Set, Block6Set, DropFlow4Set, DropFlow6Set:
			return false
		}
	}
	return true
}

func (g *Guard) loop() {
	defer g.done.Done()
	tick := time.NewTicker(g.o.Interval)
	defer tick.Stop()
	var retry <-chan time.Time
	for {
		periodic := false
		select {
		case <-g.stop:
			return
		case <-tick.C:
			periodic = true
		case <-retry:
		case <-g.kick:
			g.settle()
		}
		retry = nil
		if g.stopped() {
			return
		}
		gen, err := g.readGen()
		if periodic && err == nil && g.genOK && gen == g.lastGen {
			// Nothing was committed in the namespace since the table was
			// last found intact: the full read can wait.
			continue
		}
		g.genOK = false
		if !g.check() {
			retry = time.After(guardRetry)
		} else if err == nil && g.intactNow() {
			g.lastGen, g.genOK = gen, true
		}
	}
}

// readGen reads the ruleset generation before a verify: a change between
// the two moves it, so the next periodic verify is not skipped.
func (g *Guard) readGen() (uint32, error) {
	if g.gen == nil {
		return 0, errNoGenID
	}
	return rulesetGen(g.gen)
}

// intactNow reports whether the last verify found the table as qguard
// left it, with no change Apply could not undo pending.
func (g *Guard) intactNow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st.Intact && g.good == nil
}

// settle waits until notifications pause (or guardBurst passed).
func (g *Guard) settle() {
	end := time.After(guardBurst)
	for {
		select {
		case <-g.kick:
		case <-time.After(guardDebounce):
			return
		case <-end:
			return
		case <-g.stop:
			return
		}
	}
}

// check verifies once and repairs; false asks for a retry.
func (g *Guard) check() bool {
	diff, want, have, err := g.m.verify()
	if err != nil {
		g.mu.Lock()
		g.st.LastError = err.Error()
		g.mu.Unlock()
		g.o.Logger.Warn("nftables guard cannot read the table", "table", g.table, "err", err)
		return false
	}
	if g.good != nil {
		// A change Apply could not undo is in the table (see below).
		if len(g.good.shape().diff(have.shape(), g.table)) == 0 {
			g.good = nil // put right by hand
			g.m.adopt(want, have)
			g.setIntact()
			g.o.Logger.Info("nftables table is as qguard wants it again", "table", g.table)
			return true
		}
		if len(diff) == 0 {
			return true // still that change, nothing new: not intact
		}
		want = g.good // a new change on top: compare with the good state
	}
	if len(diff) == 0 {
		g.setIntact()
		return true
	}
	what := strings.Join(diff, "; ")
	g.mu.Lock()
	// The same difference seen again (a failed repair, or Repair off) is
	// the same tampering, not a new one.
	again := !g.st.Intact && what == g.st.LastChange
	if !again {
		g.st.Intact = false
		g.st.Tampered++
		g.st.LastTamper = time.Now()
		g.st.LastChange = what
	}
	n := g.st.Tampered
	g.mu.Unlock()
	if !g.repair() {
		if !again {
			g.o.Logger.Warn("nftables table changed by someone else (rules.guard is off: not re-installing)",
				"table", g.table, "changes", what, "tampered", n)
		}
		return true
	}
	if !again {
		g.o.Logger.Warn("nftables table changed by someone else, re-installing it",
			"table", g.table, "changes", what, "tampered", n)
	}
	if err := g.m.Apply(); err != nil {
		g.mu.Lock()
		g.st.RepairFailed++
		g.st.LastError = err.Error()
		g.mu.Unlock()
		g.o.Logger.Error("nftables guard could not re-install the table", "table", g.table, "err", err)
		return false
	}
	// Apply re-creates generations but keeps base chains (their hooks must
	// stay registered), so a change to one, such as its policy, survives
	// it. Say so once instead of re-installing every second.
	if left := g.m.leftAfter(want); len(left) > 0 {
		g.good = want
		g.mu.Lock()
		g.st.RepairFailed++
		g.st.LastError = "re-install left: " + strings.Join(left, "; ")
		g.mu.Unlock()
		g.o.Logger.Error("nftables guard: re-installing did not undo the change; put it right by hand or restart qguard",
			"table", g.table, "left", strings.Join(left, "; "))
		return true
	}
	g.mu.Lock()
	g.st.Repaired++
	g.st.Intact = true
	g.mu.Unlock()
	g.o.Logger.Info("nftables table re-installed", "table", g.table)
	return true
}

func (g *Guard) setIntact() {
	g.mu.Lock()
	g.st.Intact = true
	g.mu.Unlock()
}
