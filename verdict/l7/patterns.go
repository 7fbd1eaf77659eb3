package l7

import (
	"errors"
	"fmt"
)

// Errors returned by CompilePatterns.
var (
	ErrEmptyPattern     = errors.New("empty pattern matches everything")
	ErrPatternsTooLarge = errors.New("pattern automaton too large")
)

// maxPatternTable bounds the transition table (in int32 entries, 64 MiB):
// a policy with absurdly many patterns fails at compile time instead of
// exhausting memory.
const maxPatternTable = 16 << 20

// patternTail is how many bytes of the previous segment a PatternState
// keeps to confirm a case-sensitive pattern that straddles two segments.
const patternTail = 32

// Pattern is one byte string to look for in payloads.
type Pattern struct {
	Bytes []byte
	Fold  bool // ASCII case-insensitive
}

// Patterns finds many byte patterns in one pass over a payload. It is an
// Aho-Corasick automaton compiled into a DFA: a flat []int32 transition
// table over byte classes, so matching costs one table load per input byte
// and never allocates, whatever the number of patterns. In the start state
// a tight loop skips bytes that begin no pattern.
//
// When some patterns are case-insensitive the automaton runs on folded
// bytes, and a hit of a case-sensitive pattern is confirmed against the
// input before it counts: hits are rare, so one automaton with a check
// beats stepping two automata per byte.
//
// A Patterns is read-only after CompilePatterns and safe for concurrent use.
type Patterns struct {
	a      automaton
	pats   [][]byte
	verify []bool // per pattern: case-sensitive in a folded automaton
	tail   bool   // some pattern needs confirming: keep stream tails
	n      int
}

// PatternState carries the automaton state across the segments of a
// stream, so a pattern split between two packets is still found. The zero
// value is the start of a stream. A case-sensitive pattern longer than 32
// bytes that straddles segments of a matcher that also has
// case-insensitive patterns cannot be confirmed and is missed.
type PatternState struct {
	s     int32
	tailN uint8
	tail  [patternTail]byte
}

// automaton is one Aho-Corasick DFA. States are numbered by their offset
// into trans (state index times stride); an entry of trans holds the next
// state, bitwise inverted (negative) when that state completes a pattern,
// which keeps the match test inside the single load of the hot loop.
type automaton struct {
	class  [256]int32 // byte -> class; letters share a class when folded
	skip   [256]bool  // the byte leaves the start state where it is
	stride int32      // number of classes
	trans  []int32
	first  []int32 // per state index: lowest pattern index ending here, -1 none
	check  []bool  // per state index: some pattern ending here needs confirming
	own    [][]int32
	dict   []int32 // per state index: nearest suffix state with output, -1 none
}

// CompilePatterns builds the matcher for ps. Pattern indexes in results are
// indexes into ps.
func CompilePatterns(ps []Pattern) (*Patterns, error) {
	m := &Patterns{n: len(ps), pats: make([][]byte, len(ps)), verify: make([]bool, len(ps))}
	fold := false
	for i, p := range ps {
		if len(p.Bytes) == 0 {
			return nil, fmt.Errorf("compile patterns: pattern %d: %w", i, ErrEmptyPattern)
		}
		m.pats[i] = p.Bytes
		fold = fold || p.Fold
	}
	for i, p := range ps {
		m.verify[i] = fold && !p.Fold && hasLetter(p.Bytes)
		m.tail = m.tail || m.verify[i]
	}
	if err := m.a.build(m.pats, m.verify, fold); err != nil {
		return nil, fmt.Errorf("compile patterns: %d patterns: %w", len(ps), err)
	}
	return m, nil
}

func hasLetter(b []byte) bool {
	for _, c := range b {
		if lower(c) != c || ('a' <= c && c <= 'z') {
			return true
		}
	}
	return false
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
// segment of the same stream; it updates st. After a match st is the state
// just past the matching byte.
func (m *Patterns) MatchFrom(st *PatternState, b []byte) int {
	if m.n == 0 {
		return -1
	}
	a := &m.a
	trans, class, skip, cur := a.trans, &a.class, &a.skip, st.s
	found := -1
	for i := 0; i < len(b); i++ {
		if cur == 0 {
			for i < len(b) && skip[b[i]] {
				i++
			}
			if i == len(b) {
				break
			}
		}
		t := trans[cur+class[b[i]]]
		if t >= 0 {
			cur = t
			continue
		}
		cur = ^t
		s := cur / a.stride
		if !a.check[s] {
			found = int(a.first[s])
		} else {
			found = m.confirmFirst(s, b, i, st)
		}
		if found >= 0 {
			b = b[:i+1]
			break
		}
	}
	st.s = cur
	if m.tail {
		st.keepTail(b)
	}
	return found
}

// confirmFirst returns the lowest pattern index ending at b[end] in state
// s whose bytes really are in the input, or -1.
func (m *Patterns) confirmFirst(s int32, b []byte, end int, st *PatternState) int {
	best := int32(-1)
	for ; s >= 0; s = m.a.dict[s] {
		for _, p := range m.a.own[s] {
			if (best < 0 || p < best) && (!m.verify[p] || m.confirm(p, b, end, st)) {
				best = p
			}
		}
	}
	return int(best)
}

// confirm reports whether pattern p is in the input exactly as written,
// ending at b[end]; bytes before b come from the stream tail.
func (m *Patterns) confirm(p int32, b []byte, end int, st *PatternState) bool {
	pat := m.pats[p]
	start := end + 1 - len(pat)
	if start >= 0 {
		return string(b[start:end+1]) == string(pat)
	}
	before := -start
	if st == nil || before > int(st.tailN) {
		return false
	}
	return string(st.tail[int(st.tailN)-before:st.tailN]) == string(pat[:before]) &&
		string(b[:end+1]) == string(pat[before:])
}

// keepTail remembers the last bytes of the stream for confirm.
func (st *PatternState) keepTail(b []byte) {
	if len(b) >= patternTail {
		st.tailN = uint8(copy(st.tail[:], b[len(b)-patternTail:]))
		return
	}
	keep := min(int(st.tailN), patternTail-len(b))
	copy(st.tail[:], st.tail[int(st.tailN)-keep:st.tailN])
	copy(st.tail[keep:], b)
	st.tailN = uint8(keep + len(b))
}

// MatchSet sets in set (at least SetWords long) the bit of every pattern
// that occurs in b and returns how many bits it newly set. It reads all of b.
func (m *Patterns) MatchSet(b []byte, set []uint64) int {
	if m.n == 0 || len(set) < m.SetWords() {
		return 0
	}
	a := &m.a
	added := 0
	trans, class, cur := a.trans, &a.class, int32(0)
	for i, c := range b {
		t := trans[cur+class[c]]
		if t >= 0 {
			cur = t
			continue
		}
		cur = ^t
		for s := cur / a.stride; s >= 0; s = a.dict[s] {
			for _, p := range a.own[s] {
				w, bit := p/64, uint64(1)<<(p%64)
				if set[w]&bit == 0 && (!m.verify[p] || m.confirm(p, b, i, nil)) {
					set[w] |= bit
					added++
				}
			}
		}
	}
	return added
}
