package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/names"
	"github.com/qguard/qguard/verdict"
)

// The names (dst_name, src_name): who owns what.
//
// The engine owns one names.Table for its life (the names section takes
// effect on restart), shared by every queue's pipeline. A pipeline records
// the DNS queries it accepts and binds the answers it accepts (matching a
// pending query), on the queue's goroutine, before the answer's verdict:
// so in queue-all mode a binding exists before the client can read the
// answer. The pipelines' dst_name and src_name matchers read the table
// (queue-all, and what kernel-first queues). A reload sets the new
// policy's names as the table's filter; bindings made stay until they
// expire.

// maxStatusBindings bounds the bindings a status snapshot lists.
const maxStatusBindings = 1000

// NameStats are the names table's counters and its bindings (the first
// maxStatusBindings, by name).
type NameStats struct {
	Bindings    int           `json:"bindings"`
	Added       uint64        `json:"added"`
	Refreshed   uint64        `json:"refreshed"`
	Evicted     uint64        `json:"evicted"`
	Answers     uint64        `json:"answers"`
	Unsolicited uint64        `json:"unsolicited"`
	Untrusted   uint64        `json:"untrusted"` // from a server not in names.servers
	Malformed   uint64        `json:"malformed"`
	Queries     uint64        `json:"queries"`
	QueryEvicts uint64        `json:"query_evicts"`
	UpdateDrops uint64        `json:"kernel_update_drops"`
	Kernel      uint64        `json:"kernel_added"`  // bindings sent to the kernel sets
	KernelFails uint64        `json:"kernel_errors"` // transactions that failed
	List        []NameBinding `json:"list,omitempty"`
	Truncated   bool          `json:"list_truncated,omitempty"`
}

// NameBinding is one binding with its remaining lifetime.
type NameBinding struct {
	Name string  `json:"name"`
	Addr string  `json:"addr"`
	TTL  float64 `json:"ttl_seconds"`
}

// namesConfig is the names section as the table's config.
func namesConfig(cfg *config.File) *names.Config {
	c := cfg.Names.Config
	return &c
}

func (e *Engine) openNames(set *settings) error {
	var c names.Config
	if set.names != nil {
		c = *set.names
	}
	// Updates feed the kernel sets (nameLoop); a queue-all table adds
	// nothing, and a reload may switch modes.
	c.Updates = set.installRules
	t, err := names.New(&c)
	if err != nil {
		return fmt.Errorf("names: %w: %w", ErrConfig, err)
	}
	e.names = t
	return nil
}

// nameOptions adds the table to o, and to set's rules (the name sets of a
// new generation are filled from it): compile runs before every Apply and
// Replace.
func (e *Engine) nameOptions(o *verdict.CompileOptions, set *settings) {
	o.Names, o.NamePorts = e.names, set.namePorts
	if set.rules != nil {
		set.rules.Names = e.names
	}
}

// nameBatch bounds the bindings sent to the kernel in one transaction.
const nameBatch = 256

// nameLoop mirrors new and refreshed bindings into the kernel's name sets
// (rules.Manager.AddBinding), off the packet path: the pipelines offer
// them to the table's bounded channel, which drops and counts what does
// not fit.
func (e *Engine) nameLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ch := e.names.Updates()
	batch := make([]names.Binding, 0, nameBatch)
	var lastWarn time.Time
	for {
		select {
		case <-stop:
			return
		case b := <-ch:
			batch = append(batch[:0], b)
		}
	drain:
		for len(batch) < nameBatch {
			select {
			case b := <-ch:
				batch = append(batch, b)
			default:
				break drain
			}
		}
		if err := e.rules.AddBinding(batch); err != nil {
			e.nameErrors.Add(1)
			if time.Since(lastWarn) > 10*time.Second {
				lastWarn = time.Now()
				e.log.Warn("name bindings not added to the kernel sets", "bindings", len(batch), "err", err)
			}
			continue
		}
		e.nameKernel.Add(uint64(len(batch)))
	}
}

// usesNames reports whether a policy has dst_name or src_name.
func usesNames(p *verdict.Policy) bool {
	for i := range p.Rules {
		if len(p.Rules[i].Match.DstName)+len(p.Rules[i].Match.SrcName) > 0 {
			return true
		}
	}
	return false
}

// nameStats is the Stats part of the names; nil when no policy ever used
// them.
func (e *Engine) nameStats() *NameStats {
	if e.names == nil {
		return nil
	}
	st := e.names.Stats()
	if !e.names.Active() && st.Added == 0 {
		return nil
	}
	s := &NameStats{Bindings: st.Bindings, Added: st.Added, Refreshed: st.Refreshed, Evicted: st.Evicted,
		Answers: st.Answers, Unsolicited: st.Unsolicited, Untrusted: st.Untrusted, Malformed: st.Malformed, Queries: st.Queries,
		QueryEvicts: st.QueryEvicts, UpdateDrops: st.UpdateDrops, Kernel: e.nameKernel.Load(), KernelFails: e.nameErrors.Load()}
	now := e.names.Now()
	for _, b := range e.names.Bindings() {
		if len(s.List) == maxStatusBindings {
			s.Truncated = true
			break
		}
		s.List = append(s.List, NameBinding{Name: b.Name, Addr: b.Addr.String(),
			TTL: b.Expires.Sub(now).Round(time.Millisecond).Seconds()})
	}
	return s
}

// namesChanged reports whether the table's settings differ (names.ports
// is not one of them: the steering and the pipelines take it at reload).
func namesChanged(a, b *names.Config) bool {
	if a == nil || b == nil {
		return a != b
	}
	return a.MinTTL != b.MinTTL || a.MaxTTL != b.MaxTTL || a.MaxBindings != b.MaxBindings ||
		a.MaxPending != b.MaxPending || !slices.Equal(a.Servers, b.Servers)
}
