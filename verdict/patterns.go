package verdict

import (
	"errors"
	"fmt"
)

// Errors returned by CompilePatterns.
var (
	ErrEmptyPattern     = errors.New("empty pattern matches everything")
	ErrPatternsTooLarge = errors.New("pattern automaton too large")
)

// maxPatternTable bounds the transition table of one automaton (in int32
// entries, 64 MiB): a policy with absurdly many patterns fails at compile
// time instead of exhausting memory.
const maxPatternTable = 16 << 20

// Pattern is one byte string to look for in payloads.
type Pattern struct {
	Bytes []byte
	Fold  bool // ASCII case-insensitive
}

// Patterns finds many byte patterns in one pass over a payload. It is an
// Aho-Corasick automaton compiled into a DFA: a flat []int32 transition
// table over byte classes, so matching costs one table load per input byte
// and never allocates, whatever the number of patterns. Case-sensitive and
// case-insensitive patterns live in two automata stepped side by side; the
// second is built only when needed.
//
// A Patterns is read-only after CompilePatterns and safe for concurrent use.
type Patterns struct {
	exact, fold automaton
	n           int
}

// PatternState carries the automaton states across the segments of a
// stream, so a pattern split between two packets is still found. The zero
// value is the start of a stream.
type PatternState struct{ exact, fold int32 }

// automaton is one Aho-Corasick DFA. States are numbered by their offset
// into trans (state index times stride); an entry of trans holds the next
// state, bitwise inverted (negative) when that state completes a pattern,
// which keeps the match test inside the single load of the hot loop.
type automaton struct {
	class  [256]int32 // byte -> class; folded for case-insensitive automata
	stride int32      // number of classes
	trans  []int32
	first  []int32 // per state index: lowest pattern index ending here, -1 none
	own    [][]int32
	dict   []int32 // per state index: nearest suffix state with output, -1 none
}

// CompilePatterns builds the matcher for ps. Pattern indexes in results are
// indexes into ps.
func CompilePatterns(ps []Pattern) (*Patterns, error) {
	var exact, fold [][]byte
	var exactIdx, foldIdx []int32
	for i, p := range ps {
		if len(p.Bytes) == 0 {
			return nil, fmt.Errorf("compile patterns: pattern %d: %w", i, ErrEmptyPattern)
		}
		if p.Fold {
			fold = append(fold, p.Bytes)
			foldIdx = append(foldIdx, int32(i))
		} else {
			exact = append(exact, p.Bytes)
			exactIdx = append(exactIdx, int32(i))
		}
	}
	m := &Patterns{n: len(ps)}
	if err := m.exact.build(exact, exactIdx, false); err != nil {
		return nil, fmt.Errorf("compile patterns: %d case-sensitive patterns: %w", len(exact), err)
	}
	if err := m.fold.build(fold, foldIdx, true); err != nil {
		return nil, fmt.Errorf("compile patterns: %d case-insensitive patterns: %w", len(fold), err)
	}
	return m, nil
}

// Len returns the number of patterns.
func (m *Patterns) Len() int { return m.n }

// SetWords returns the length of the []uint64 bitset MatchSet needs.
func (m *Patterns) SetWords() int { return (m.n + 63) / 64 }

// Match returns the index of the pattern whose first occurrence in b ends
// earliest (the lowest index among patterns ending at the same byte), or -1.
func (m *Patterns) Match(b []byte) int {
	var st PatternState
	return m.MatchFrom(&st, b)
}

// MatchFrom is Match continuing from st, the state after the previous
// segment of the same stream; it updates st. After a match st points just
// past the matching byte, so calling again with the rest of b resumes.
func (m *Patterns) MatchFrom(st *PatternState, b []byte) int {
	switch {
	case m.n == 0:
		return -1
	case m.fold.trans == nil:
		return m.exact.scan(&st.exact, b)
	case m.exact.trans == nil:
		return m.fold.scan(&st.fold, b)
	}
	return m.scanBoth(st, b)
}

// scan runs the DFA over b from *s and stops at the first match.
func (a *automaton) scan(s *int32, b []byte) int {
	trans, class, cur := a.trans, &a.class, *s
	for _, c := range b {
		t := trans[cur+class[c]]
		if t < 0 {
			*s = ^t
			return int(a.first[^t/a.stride])
		}
		cur = t
	}
	*s = cur
	return -1
}

// scanBoth steps both automata per byte so the earliest match wins.
func (m *Patterns) scanBoth(st *PatternState, b []byte) int {
	e, f := &m.exact, &m.fold
	se, sf := st.exact, st.fold
	for _, c := range b {
		te := e.trans[se+e.class[c]]
		tf := f.trans[sf+f.class[c]]
		if te|tf < 0 {
			best := int32(-1)
			if te < 0 {
				te = ^te
				best = e.first[te/e.stride]
			}
			if tf < 0 {
				tf = ^tf
				if x := f.first[tf/f.stride]; best < 0 || x < best {
					best = x
				}
			}
			st.exact, st.fold = te, tf
			return int(best)
		}
		se, sf = te, tf
	}
	st.exact, st.fold = se, sf
	return -1
}

// MatchSet sets in set (at least SetWords long) the bit of every pattern
// that occurs in b and returns how many bits it newly set. It reads all of b.
func (m *Patterns) MatchSet(b []byte, set []uint64) int {
	if len(set) < m.SetWords() {
		return 0
	}
	return m.exact.scanAll(b, set) + m.fold.scanAll(b, set)
}

func (a *automaton) scanAll(b []byte, set []uint64) int {
	if a.trans == nil {
		return 0
	}
	added := 0
	trans, class, cur := a.trans, &a.class, int32(0)
	for _, c := range b {
		t := trans[cur+class[c]]
		if t >= 0 {
			cur = t
			continue
		}
		cur = ^t
		for s := cur / a.stride; s >= 0; s = a.dict[s] {
			for _, p := range a.own[s] {
				w, bit := p/64, uint64(1)<<(p%64)
				if set[w]&bit == 0 {
					set[w] |= bit
					added++
				}
			}
		}
	}
	return added
}
