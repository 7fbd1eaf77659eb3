package xdp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
)

// Filter is the loaded XDP program, its maps and its attachments. Its
// methods are safe for concurrent use.
type Filter struct {
	// mu is held for reading by every map operation and for writing by
	// Close, so no operation ever runs on a closed (or reused) file
	// descriptor.
	mu       sync.RWMutex
	closed   bool
	final    Stats // snapshot taken by Close
	prog     *ebpf.Program
	src      *ebpf.Map
	flow     *ebpf.Map
	counters *ebpf.Map
	links    []attached

	stopOnce sync.Once
	stop     chan struct{} // closed by Close to end the expiry goroutine
	done     chan struct{} // closed by the expiry goroutine when it returns
}

type attached struct {
	Attachment
	link io.Closer
}

// Attachments reports where the program is attached and in which mode, in
// the order of Config.Interfaces. It is empty after Close.
func (f *Filter) Attachments() []Attachment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Attachment, len(f.links))
	for i, l := range f.links {
		out[i] = l.Attachment
	}
	return out
}

// BlockSource drops every packet from addr until ttl has passed; ttl 0
// means until UnblockSource. Blocking an address again replaces its
// deadline and resets its hit counter. IPv4-mapped IPv6 addresses block
// the IPv4 address.
func (f *Filter) BlockSource(addr netip.Addr, ttl time.Duration) error {
	s := getScratch()
	defer scratchPool.Put(s)
	if err := makeSrcKey(&s.src, addr); err != nil {
		return err
	}
	if err := s.deadline(ttl); err != nil {
		return err
	}
	if err := f.update(f.src, unsafe.Pointer(&s.src), unsafe.Pointer(&s.val)); err != nil {
		return fmt.Errorf("xdp: block source %v: %w", addr, err)
	}
	return nil
}

// UnblockSource removes addr's block. Removing an address that is not
// blocked is not an error.
func (f *Filter) UnblockSource(addr netip.Addr) error {
	s := getScratch()
	defer scratchPool.Put(s)
	if err := makeSrcKey(&s.src, addr); err != nil {
		return err
	}
	if err := f.remove(f.src, unsafe.Pointer(&s.src)); err != nil {
		return fmt.Errorf("xdp: unblock source %v: %w", addr, err)
	}
	return nil
}

// BlockFlow drops the packets of one direction of a flow (the direction
// src -> dst) until ttl has passed; ttl 0 means until UnblockFlow. For
// protocols without ports (anything but TCP, UDP, UDP-Lite and SCTP) both
// ports must be 0 and the entry matches every packet of that protocol
// between the two addresses. Blocking a flow again replaces its deadline
// and resets its hit counter.
func (f *Filter) BlockFlow(proto uint8, src, dst netip.AddrPort, ttl time.Duration) error {
	s := getScratch()
	defer scratchPool.Put(s)
	if err := makeFlowKey(&s.flow, proto, src, dst); err != nil {
		return err
	}
	if err := s.deadline(ttl); err != nil {
		return err
	}
	if err := f.update(f.flow, unsafe.Pointer(&s.flow), unsafe.Pointer(&s.val)); err != nil {
		return fmt.Errorf("xdp: block flow %d %v -> %v: %w", proto, src, dst, err)
	}
	return nil
}

// UnblockFlow removes a flow block. Removing a flow that is not blocked is
// not an error.
func (f *Filter) UnblockFlow(proto uint8, src, dst netip.AddrPort) error {
	s := getScratch()
	defer scratchPool.Put(s)
	if err := makeFlowKey(&s.flow, proto, src, dst); err != nil {
		return err
	}
	if err := f.remove(f.flow, unsafe.Pointer(&s.flow)); err != nil {
		return fmt.Errorf("xdp: unblock flow %d %v -> %v: %w", proto, src, dst, err)
	}
	return nil
}

// scratch holds a key and a value for one map call. Keys and values
// handed to cilium/ebpf escape to the heap; a pooled scratch keeps the
// block calls allocation-free (2 allocations a call without it).
type scratch struct {
	src  srcKey
	flow flowKey
	val  entry
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func (s *scratch) deadline(ttl time.Duration) error {
	v, err := deadline(ttl)
	s.val = v
	return err
}

func deadline(ttl time.Duration) (entry, error) {
	switch {
	case ttl < 0:
		return entry{}, fmt.Errorf("xdp: block: ttl %s is negative: %w", ttl, ErrInvalid)
	case ttl == 0:
		return entry{}, nil
	}
	return entry{ExpiresNs: uint64(monoNow() + int64(ttl))}, nil
}

// update and remove pass keys and values as unsafe.Pointer: cilium/ebpf
// then hands the memory to the kernel as is, with no marshalling and no
// allocation. The Go types mirror the C layout exactly (TestKeyLayout).
// The callers wrap errors, so nothing is formatted on success.
func (f *Filter) update(m *ebpf.Map, k, v unsafe.Pointer) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrClosed
	}
	return m.Update(k, v, ebpf.UpdateAny)
}

func (f *Filter) remove(m *ebpf.Map, k unsafe.Pointer) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrClosed
	}
	if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// Kind tells source blocks from flow blocks in an Entry.
type Kind uint8

const (
	KindUnset Kind = iota
	KindSource
	KindFlow
)

// String returns "source" or "flow".
func (k Kind) String() string {
	switch k {
	case KindSource:
		return "source"
	case KindFlow:
		return "flow"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Entry is one block as the kernel holds it, for metrics and `rules show`.
type Entry struct {
	Kind Kind
	// Proto is the IP protocol of a flow block (0 for source blocks).
	Proto uint8
	// Src is the blocked source (port 0 for source blocks); Dst is the
	// flow's destination (invalid for source blocks).
	Src, Dst netip.AddrPort
	// Expires is when the block lifts; the zero time means never.
	Expires time.Time
	// Expired reports that the deadline has passed: the program already
	// lets the traffic through, Expire has not deleted the entry yet.
	Expired bool
	// Hits counts the packets this entry dropped.
	Hits uint64
}

// Entries lists every source and flow block with its hit counter. It
// allocates: it is meant for metrics scrapes and `qguard rules show`.
func (f *Filter) Entries() ([]Entry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, fmt.Errorf("xdp: list entries: %w", ErrClosed)
	}
	now, wall := monoNow(), time.Now()
	var out []Entry
	var sk srcKey
	var fk flowKey
	var v entry
	it := f.src.Iterate()
	for it.Next(&sk, &v) {
		e := Entry{Kind: KindSource, Src: netip.AddrPortFrom(getAddr(sk.Family, &sk.Addr), 0), Hits: v.Hits}
		e.Expires, e.Expired = wallTime(v.ExpiresNs, now, wall)
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("xdp: list source blocks: %w", err)
	}
	it = f.flow.Iterate()
	for it.Next(&fk, &v) {
		e := Entry{
			Kind: KindFlow, Proto: fk.Proto, Hits: v.Hits,
			Src: netip.AddrPortFrom(getAddr(fk.Family, &fk.Src), fk.Sport),
			Dst: netip.AddrPortFrom(getAddr(fk.Family, &fk.Dst), fk.Dport),
		}
		e.Expires, e.Expired = wallTime(v.ExpiresNs, now, wall)
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("xdp: list flow blocks: %w", err)
	}
	return out, nil
}

// wallTime converts a CLOCK_MONOTONIC deadline to wall-clock time.
func wallTime(expires uint64, mono int64, wall time.Time) (time.Time, bool) {
	if expires == 0 {
		return time.Time{}, false
	}
	d := int64(expires) - mono
	return wall.Add(time.Duration(d)), d <= 0
}

// Expire deletes the entries whose deadline is at or before now and
// returns how many it deleted. The program already ignores expired
// entries; Expire frees their slots and stops them showing in Entries.
// Passing a time in the future expires early.
func (f *Filter) Expire(now time.Time) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, fmt.Errorf("xdp: expire: %w", ErrClosed)
	}
	limit := uint64(monoNow() + int64(time.Until(now)))
	n1, err1 := expireMap[srcKey](f.src, limit)
	n2, err2 := expireMap[flowKey](f.flow, limit)
	if err := errors.Join(err1, err2); err != nil {
		return n1 + n2, fmt.Errorf("xdp: expire: %w", err)
	}
	return n1 + n2, nil
}

// expireMap collects the expired keys first and deletes them afterwards:
// deleting while iterating a hash map can restart the walk.
func expireMap[K any](m *ebpf.Map, limit uint64) (int, error) {
	var (
		k    K
		v    entry
		dead []K
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if v.ExpiresNs != 0 && v.ExpiresNs <= limit {
			dead = append(dead, k)
		}
	}
	err := it.Err()
	n := 0
	for i := range dead {
		switch derr := m.Delete(&dead[i]); {
		case derr == nil:
			n++
		case !errors.Is(derr, ebpf.ErrKeyNotExist):
			err = errors.Join(err, derr)
		}
	}
	return n, err
}

// expireLoop runs Expire every interval until stop is closed.
func (f *Filter) expireLoop(every time.Duration, log *slog.Logger) {
	defer close(f.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case now := <-t.C:
			if _, err := f.Expire(now); err != nil && log != nil && !errors.Is(err, ErrClosed) {
				log.Warn("xdp expiry failed", "err", err)
			}
		}
	}
}

// Close detaches the program from every interface and frees its maps. The
// counters stay readable through Stats. Close is idempotent.
func (f *Filter) Close() error {
	if f.stop != nil {
		f.stopOnce.Do(func() { close(f.stop) })
		<-f.done
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	if s, err := f.readStats(); err == nil {
		f.final = s
	}
	f.closed = true
	var errs []error
	for _, l := range f.links {
		if err := l.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("xdp: detach from %s: %w", l.Interface, err))
		}
	}
	f.links = nil
	for _, c := range []io.Closer{f.prog, f.src, f.flow, f.counters} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
