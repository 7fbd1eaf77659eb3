package names

import (
	"hash/maphash"
	"net/netip"
	"sync"
)

// Flow is a DNS message's transport flow as the firewall sees it.
type Flow struct {
	Proto            uint8 // 6 (TCP) or 17 (UDP)
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// reverse returns the flow of the other direction.
func (f Flow) reverse() Flow {
	return Flow{Proto: f.Proto, Src: f.Dst, Dst: f.Src, SrcPort: f.DstPort, DstPort: f.SrcPort}
}

// pendingWays is the associativity of the pending table: a query evicts
// the oldest of the ways its flow and ID hash to.
const pendingWays = 4

// query is one pending query: its flow (client to server), ID and
// question, and when it was seen.
type query struct {
	flow  Flow
	id    uint16
	qtype uint16
	name  uint64 // hash of the question name
	seen  int64  // unix nanoseconds; 0: free
}

// pending holds the queries seen and not answered yet, in a fixed array
// of sets of pendingWays slots: bounded, and never allocating after New.
type pending struct {
	mu      sync.Mutex
	seed    maphash.Seed
	slots   []query
	sets    uint64
	timeout int64
}

func newPending(n int, timeout int64) *pending {
	sets := max(1, (n+pendingWays-1)/pendingWays)
	return &pending{seed: maphash.MakeSeed(), slots: make([]query, sets*pendingWays), sets: uint64(sets), timeout: timeout}
}

func (p *pending) set(f *Flow, id uint16) []query {
	var h maphash.Hash
	h.SetSeed(p.seed)
	a, b := f.Src.As16(), f.Dst.As16()
	h.Write(a[:])
	h.Write(b[:])
	h.WriteByte(f.Proto)
	h.WriteByte(byte(f.SrcPort >> 8))
	h.WriteByte(byte(f.SrcPort))
	h.WriteByte(byte(f.DstPort >> 8))
	h.WriteByte(byte(f.DstPort))
	h.WriteByte(byte(id >> 8))
	h.WriteByte(byte(id))
	i := h.Sum64() % p.sets * pendingWays
	return p.slots[i : i+pendingWays]
}

func (p *pending) nameHash(name []byte) uint64 { return maphash.Bytes(p.seed, name) }

// add records a query; it reports whether it took the slot of a query
// still pending (one that will now bind nothing when answered).
func (p *pending) add(f Flow, q *Question, now int64) (evicted bool) {
	h := p.nameHash(q.Name())
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.set(&f, q.ID)
	victim := 0
	for i := range s {
		e := &s[i]
		if e.seen == 0 || now-e.seen > p.timeout || e.flow == f && e.id == q.ID {
			victim = i // free, stale, or the same query again (a retry)
			break
		}
		if e.seen < s[victim].seen {
			victim = i
		}
	}
	e := &s[victim]
	evicted = e.seen != 0 && now-e.seen <= p.timeout && !(e.flow == f && e.id == q.ID)
	*e = query{flow: f, id: q.ID, qtype: q.Type, name: h, seen: now}
	return evicted
}

// take finds and consumes the pending query that answer a on flow f (the
// server's side) answers: the reversed flow, the same ID and question.
func (p *pending) take(f Flow, q *Question, now int64) bool {
	qf := f.reverse()
	h := p.nameHash(q.Name())
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.set(&qf, q.ID)
	for i := range s {
		e := &s[i]
		if e.seen != 0 && now-e.seen <= p.timeout && e.flow == qf && e.id == q.ID && e.qtype == q.Type && e.name == h {
			e.seen = 0
			return true
		}
	}
	return false
}
