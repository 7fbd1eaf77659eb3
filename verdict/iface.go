package verdict

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrIfaceName is wrapped by Compile for an in_iface or out_iface name that
// no interface can have.
var ErrIfaceName = errors.New("bad interface name")

// Ifaces maps interface indexes to names for the in_iface and out_iface
// matchers, which match names (an interface named in a policy need not exist
// when the policy is compiled: the rule applies once it appears). The queue
// delivers indexes; Name reads a copy-on-write map, so the packet path makes
// no system call. An index not in the map is looked up once, on its first
// packet, and the answer (also "none") is kept: indexes are not reused
// while the kernel has fresh ones, so only a rename changes an entry, and
// Set and Delete (fed by link notifications, see engine) keep up with those.
// Ifaces is safe for concurrent use.
type Ifaces struct {
	mu     sync.Mutex
	names  atomic.Pointer[map[uint32]string]
	lookup func(index uint32) (string, error)
}

// NewIfaces returns an empty table that asks lookup for indexes it has not
// seen. A nil lookup means net.InterfaceByIndex in the calling network
// namespace.
func NewIfaces(lookup func(index uint32) (string, error)) *Ifaces {
	if lookup == nil {
		lookup = func(index uint32) (string, error) {
			ifi, err := net.InterfaceByIndex(int(index))
			if err != nil {
				return "", err
			}
			return ifi.Name, nil
		}
	}
	t := &Ifaces{lookup: lookup}
	m := map[uint32]string{}
	t.names.Store(&m)
	return t
}

var systemIfaces = NewIfaces(nil)

// SystemIfaces returns the process's table for the network namespace it
// runs in: the one Compile uses when CompileOptions.Ifaces is nil.
func SystemIfaces() *Ifaces { return systemIfaces }

// Name returns the name of interface index i, "" for 0 and for an index no
// interface has.
func (t *Ifaces) Name(i uint32) string {
	if i == 0 {
		return ""
	}
	if n, ok := (*t.names.Load())[i]; ok {
		return n
	}
	return t.miss(i)
}

func (t *Ifaces) miss(i uint32) string {
	name, err := t.lookup(i)
	if err != nil {
		name = "" // kept: a packet from a link already gone, or a bad index
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := (*t.names.Load())[i]; ok {
		return n // Set raced ahead with fresher news
	}
	t.store(i, name, true)
	return name
}

// Set records that index i is named name (a link appeared or was renamed).
func (t *Ifaces) Set(i uint32, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.store(i, name, true)
}

// Delete forgets index i (the link is gone).
func (t *Ifaces) Delete(i uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.store(i, "", false)
}

// Reset forgets every index (the caller lost link notifications).
func (t *Ifaces) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := map[uint32]string{}
	t.names.Store(&m)
}

func (t *Ifaces) store(i uint32, name string, keep bool) {
	old := *t.names.Load()
	cur, had := old[i]
	if had == keep && cur == name {
		return
	}
	m := make(map[uint32]string, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if keep {
		m[i] = name
	} else {
		delete(m, i)
	}
	t.names.Store(&m)
}

// ifPattern is one in_iface or out_iface name: exact, or a prefix when
// written "eth*" (as nft's iifname).
type ifPattern struct {
	s      string
	prefix bool
}

func parseIfPattern(s string) (ifPattern, error) {
	p := ifPattern{s: s}
	if strings.HasSuffix(s, "*") {
		p.s, p.prefix = s[:len(s)-1], true
	}
	switch {
	case p.s == "":
		return p, fmt.Errorf("%w: %q: expected a name, or a prefix and '*' (eth*); leave the matcher out to match every interface", ErrIfaceName, s)
	case len(s) > 15:
		return p, fmt.Errorf("%w: %q: longer than 15 characters", ErrIfaceName, s)
	case strings.ContainsAny(p.s, "*/: \t\n") || s == "." || s == "..":
		return p, fmt.Errorf("%w: %q: '*' only at the end; no '/', ':' or spaces", ErrIfaceName, s)
	}
	return p, nil
}

func (p ifPattern) match(name string) bool {
	if p.prefix {
		return strings.HasPrefix(name, p.s)
	}
	return name == p.s
}

func (p ifPattern) String() string {
	if p.prefix {
		return p.s + "*"
	}
	return p.s
}

func matchIfPatterns(ps []ifPattern, name string) bool {
	if name == "" {
		return false
	}
	for _, p := range ps {
		if p.match(name) {
			return true
		}
	}
	return false
}

// ifNameIndex maps an interface name to the rules whose name patterns match
// it, computed on a name's first packet and kept (names are few). It adds
// to ifIndex, which covers rules without the matcher and those listing
// indexes.
type ifNameIndex struct {
	ifaces *Ifaces
	words  int
	pats   [][]ifPattern // per rule
	zero   bitmap
	mu     sync.Mutex
	byName atomic.Pointer[ifNameCache]
}

type ifNameCache struct{ m map[string]bitmap }

// maxIfNames bounds ifNameIndex's cache: a host that makes a link per
// container sees names come and go; past this the cache starts afresh.
const maxIfNames = 4096

func newIfNameIndex(ifaces *Ifaces, words int, pats [][]ifPattern) *ifNameIndex {
	for _, p := range pats {
		if len(p) > 0 {
			x := &ifNameIndex{ifaces: ifaces, words: words, pats: pats, zero: newBitmap(words)}
			x.byName.Store(&ifNameCache{m: map[string]bitmap{}})
			return x
		}
	}
	return nil
}

// lookup returns the rules whose patterns match the name of index i.
func (x *ifNameIndex) lookup(i uint32) bitmap {
	name := x.ifaces.Name(i)
	if name == "" {
		return x.zero
	}
	if b, ok := x.byName.Load().m[name]; ok {
		return b
	}
	return x.add(name)
}

func (x *ifNameIndex) add(name string) bitmap {
	b := newBitmap(x.words)
	for r, ps := range x.pats {
		if matchIfPatterns(ps, name) {
			b.set(r)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.byName.Load()
	m := make(map[string]bitmap, len(old.m)+1)
	if len(old.m) < maxIfNames {
		for k, v := range old.m {
			m[k] = v
		}
	}
	m[name] = b
	x.byName.Store(&ifNameCache{m: m})
	return b
}
