package names

import (
	"container/heap"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config's zero fields.
const (
	DefaultMinTTL         = 60 * time.Second
	DefaultMaxTTL         = 24 * time.Hour
	DefaultMaxBindings    = 65536
	DefaultMaxPending     = 4096
	DefaultPendingTimeout = 10 * time.Second
	// DefaultUpdates is the capacity of the Updates channel.
	DefaultUpdates = 4096
)

// Bounds of Config's counts.
const (
	MaxBindingsLimit = 1 << 24
	MaxPendingLimit  = 1 << 20
)

// DefaultConfig returns the defaults a zero field means, spelled out (the
// configuration file's names section when it sets nothing).
func DefaultConfig() *Config {
	return &Config{MinTTL: DefaultMinTTL, MaxTTL: DefaultMaxTTL, MaxBindings: DefaultMaxBindings,
		MaxPending: DefaultMaxPending, PendingTimeout: DefaultPendingTimeout}
}

// ErrConfig is wrapped by Config.Validate.
var ErrConfig = errors.New("invalid names configuration")

// Config bounds a Table. The zero value means the defaults; a nil *Config
// too.
type Config struct {
	// MinTTL and MaxTTL clamp a binding's lifetime: an answer's TTL below
	// MinTTL binds for MinTTL (clients often cache longer than the TTL,
	// and a rule must hold while they do), above MaxTTL for MaxTTL.
	MinTTL, MaxTTL time.Duration
	// MaxBindings bounds the name-address pairs kept; a new one replaces
	// the one that expires first.
	MaxBindings int
	// MaxPending bounds the queries waiting for an answer.
	MaxPending int
	// PendingTimeout is how long a query waits for its answer.
	PendingTimeout time.Duration
	// Servers, when not empty, are the only DNS servers whose answers
	// bind: queries to others are not recorded and their answers count as
	// Untrusted. Without it any server a client asks binds for every
	// client, so a client that asks its own server can bind any address
	// to any name (docs/names.md).
	Servers []netip.Prefix
	// Updates, when set, makes new and refreshed bindings available on
	// Table.Updates (for the kernel sets).
	Updates bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *Config) withDefaults() Config {
	var o Config
	if c != nil {
		o = *c
	}
	if o.MinTTL == 0 {
		o.MinTTL = DefaultMinTTL
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.MaxBindings == 0 {
		o.MaxBindings = DefaultMaxBindings
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.PendingTimeout == 0 {
		o.PendingTimeout = DefaultPendingTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports the first bad field, wrapping ErrConfig.
func (c *Config) Validate() error {
	o := c.withDefaults()
	switch {
	case o.MinTTL < 0 || o.MaxTTL < 0 || o.PendingTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrConfig)
	case o.MinTTL > o.MaxTTL:
		return fmt.Errorf("%w: min_ttl %v is above max_ttl %v", ErrConfig, o.MinTTL, o.MaxTTL)
	case o.MaxBindings < 0 || o.MaxBindings > MaxBindingsLimit:
		return fmt.Errorf("%w: max_bindings %d: expected 1 to %d", ErrConfig, o.MaxBindings, MaxBindingsLimit)
	case o.MaxPending < 0 || o.MaxPending > MaxPendingLimit:
		return fmt.Errorf("%w: max_pending %d: expected 1 to %d", ErrConfig, o.MaxPending, MaxPendingLimit)
	}
	for _, p := range o.Servers {
		if !p.IsValid() {
			return fmt.Errorf("%w: servers: invalid prefix", ErrConfig)
		}
	}
	return nil
}

// Matcher says whether a name (lowercased, dotted, no trailing dot)
// belongs to a set; a policy's dst_name patterns are one.
type Matcher interface {
	MatchName(name []byte) bool
}

// Binding is one name bound to one address until Expires.
type Binding struct {
	Name    string
	Addr    netip.Addr
	Expires time.Time
}

// Stats are a Table's counters.
type Stats struct {
	Bindings    int    // live bindings
	Added       uint64 // new bindings
	Refreshed   uint64 // bindings an answer extended
	Evicted     uint64 // bindings replaced before expiry (MaxBindings)
	Answers     uint64 // answers that matched a pending query
	Unsolicited uint64 // answers matching no pending query: bound nothing
	Untrusted   uint64 // answers from a server not in Config.Servers: bound nothing
	Malformed   uint64 // responses that did not parse
	Queries     uint64 // queries recorded
	QueryEvicts uint64 // pending queries replaced before their answer (MaxPending)
	UpdateDrops uint64 // updates dropped because Updates was full
}

// nameEntry is one bound name and its bindings.
type nameEntry struct {
	name  string
	bytes []byte // the same, for Matcher
	binds []*binding
}

type binding struct {
	n       *nameEntry
	addr    netip.Addr
	expires int64 // unix nanoseconds
	idx     int   // in the expiry heap
}

// Table holds the pending queries and the bindings. Its zero value is not
// usable; call New.
type Table struct {
	cfg     Config
	pend    *pending
	filter  atomic.Pointer[filterBox]
	updates chan Binding

	mu     sync.RWMutex
	byName map[string]*nameEntry
	byAddr map[netip.Addr][]*binding
	exp    expiry

	added, refreshed, evicted, answers, unsolicited, untrusted atomic.Uint64
	malformed, queries, queryEvicts, updateDrops               atomic.Uint64
}

type filterBox struct{ m Matcher }

// New returns an empty table. It binds nothing until SetFilter says which
// names matter.
func New(c *Config) (*Table, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o := c.withDefaults()
	t := &Table{cfg: o, pend: newPending(o.MaxPending, int64(o.PendingTimeout)),
		byName: map[string]*nameEntry{}, byAddr: map[netip.Addr][]*binding{}}
	if o.Updates {
		t.updates = make(chan Binding, DefaultUpdates)
	}
	return t, nil
}

// SetFilter sets the names worth binding (nil: none). A reload sets the
// new policy's; bindings already made stay until they expire.
func (t *Table) SetFilter(m Matcher) {
	if m == nil {
		t.filter.Store(nil)
		return
	}
	t.filter.Store(&filterBox{m})
}

// Active reports whether some name is worth binding.
func (t *Table) Active() bool { return t.filter.Load() != nil }

// Updates returns the channel of new and refreshed bindings, nil unless
// Config.Updates.
func (t *Table) Updates() <-chan Binding { return t.updates }

// trusted reports whether answers from server a may bind.
func (t *Table) trusted(a netip.Addr) bool {
	if len(t.cfg.Servers) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range t.cfg.Servers {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Query records a query seen on flow f (client to server); a query to a
// server not in Config.Servers is not recorded.
func (t *Table) Query(f Flow, q *Question) {
	if !t.trusted(f.Dst) {
		return
	}
	t.queries.Add(1)
	if t.pend.add(f, q, t.cfg.Now().UnixNano()) {
		t.queryEvicts.Add(1)
	}
}

// Malformed counts a response that did not parse.
func (t *Table) Malformed() { t.malformed.Add(1) }

// Answer binds the addresses of answer a seen on flow f (server to
// client) if it answers a pending query, which it consumes; it returns
// the number of bindings made or refreshed and whether a query was
// pending.
func (t *Table) Answer(f Flow, a *Answer) (bound int, solicited bool) {
	now := t.cfg.Now()
	if !t.trusted(f.Src) {
		t.untrusted.Add(1)
		return 0, false
	}
	if !t.pend.take(f, &a.Question, now.UnixNano()) {
		t.unsolicited.Add(1)
		return 0, false
	}
	t.answers.Add(1)
	fb := t.filter.Load()
	if fb == nil || len(a.Addrs()) == 0 {
		return 0, true
	}
	for i := 0; i < a.ChainLen(); i++ {
		name := a.ChainName(i)
		if !fb.m.MatchName(name) {
			continue
		}
		for _, r := range a.Addrs() {
			t.bind(name, r.Addr, t.lifetime(r.TTL), now)
			bound++
		}
	}
	return bound, true
}

func (t *Table) lifetime(ttl uint32) time.Duration {
	d := time.Duration(ttl) * time.Second
	return min(max(d, t.cfg.MinTTL), t.cfg.MaxTTL)
}

// bind adds or extends one binding.
func (t *Table) bind(name []byte, a netip.Addr, life time.Duration, now time.Time) {
	a = a.Unmap()
	exp := now.Add(life).UnixNano()
	t.mu.Lock()
	t.expire(now.UnixNano())
	n := t.byName[string(name)]
	if n != nil {
		for _, b := range n.binds {
			if b.addr == a {
				if exp > b.expires {
					b.expires = exp
					heap.Fix(&t.exp, b.idx)
					t.refreshed.Add(1)
					t.mu.Unlock()
					t.notify(n.name, a, exp)
				} else {
					t.mu.Unlock()
				}
				return
			}
		}
	}
	if len(t.exp) >= t.cfg.MaxBindings {
		t.remove(t.exp[0])
		t.evicted.Add(1)
	}
	if n = t.byName[string(name)]; n == nil { // remove may have dropped it
		n = &nameEntry{name: string(name), bytes: []byte(string(name))}
		t.byName[n.name] = n
	}
	b := &binding{n: n, addr: a, expires: exp}
	n.binds = append(n.binds, b)
	t.byAddr[a] = append(t.byAddr[a], b)
	heap.Push(&t.exp, b)
	t.added.Add(1)
	t.mu.Unlock()
	t.notify(n.name, a, exp)
}

func (t *Table) notify(name string, a netip.Addr, exp int64) {
	if t.updates == nil {
		return
	}
	select {
	case t.updates <- Binding{Name: name, Addr: a, Expires: time.Unix(0, exp)}:
	default:
		t.updateDrops.Add(1)
	}
}

// expire removes the bindings expired at now. The caller holds mu.
func (t *Table) expire(now int64) {
	for len(t.exp) > 0 && t.exp[0].expires <= now {
		t.remove(t.exp[0])
	}
}

// remove drops b from every index. The caller holds mu.
func (t *Table) remove(b *binding) {
	heap.Remove(&t.exp, b.idx)
	n := b.n
	n.binds = deleteBinding(n.binds, b)
	if len(n.binds) == 0 {
		delete(t.byName, n.name)
	}
	if l := deleteBinding(t.byAddr[b.addr], b); len(l) == 0 {
		delete(t.byAddr, b.addr)
	} else {
		t.byAddr[b.addr] = l
	}
}

func deleteBinding(l []*binding, b *binding) []*binding {
	if i := slices.Index(l, b); i >= 0 {
		l[i] = l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
	}
	return l
}

// Match reports whether a live binding ties address a to a name m
// matches. It does not allocate.
func (t *Table) Match(a netip.Addr, m Matcher) bool {
	a = a.Unmap()
	now := t.cfg.Now().UnixNano()
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, b := range t.byAddr[a] {
		if b.expires > now && m.MatchName(b.n.bytes) {
			return true
		}
	}
	return false
}

// Bindings returns the live bindings, sorted by name and address.
func (t *Table) Bindings() []Binding {
	now := t.cfg.Now().UnixNano()
	t.mu.Lock()
	t.expire(now)
	out := make([]Binding, 0, len(t.exp))
	for _, b := range t.exp {
		out = append(out, Binding{Name: b.n.name, Addr: b.addr, Expires: time.Unix(0, b.expires)})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(x, y Binding) int {
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return x.Addr.Compare(y.Addr)
	})
	return out
}

// Matching returns the live bindings whose name m matches (for filling a
// kernel set of a new rule generation).
func (t *Table) Matching(m Matcher) []Binding {
	var out []Binding
	for _, b := range t.Bindings() {
		if m.MatchName([]byte(b.Name)) {
			out = append(out, b)
		}
	}
	return out
}

// Now returns the table's clock.
func (t *Table) Now() time.Time { return t.cfg.Now() }

// Stats returns the counters.
func (t *Table) Stats() Stats {
	t.mu.RLock()
	n := len(t.exp)
	t.mu.RUnlock()
	return Stats{Bindings: n, Added: t.added.Load(), Refreshed: t.refreshed.Load(), Evicted: t.evicted.Load(),
		Answers: t.answers.Load(), Unsolicited: t.unsolicited.Load(), Untrusted: t.untrusted.Load(), Malformed: t.malformed.Load(),
		Queries: t.queries.Load(), QueryEvicts: t.queryEvicts.Load(), UpdateDrops: t.updateDrops.Load()}
}

// expiry is a min-heap of bindings by expiry time.
type expiry []*binding

func (h expiry) Len() int           { return len(h) }
func (h expiry) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiry) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *expiry) Push(x any) {
	b := x.(*binding)
	b.idx = len(*h)
	*h = append(*h, b)
}
func (h *expiry) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}
