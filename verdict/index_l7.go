package verdict

import (
	"math/bits"
	"unsafe"

	"github.com/qguard/qguard/verdict/l7"
)

// The L7 index answers "which rules does this name (or payload) satisfy"
// once per packet, whatever the number of rules: a policy of a thousand
// rules, each blocking some domains, costs one extraction and a few map
// lookups per packet rather than a lookup per rule. Rules keep their own
// nameSet and payloadSet for Trace's rule-by-rule walk.

// nameIndex maps names of one kind (DNS, SNI or HTTP host) to the rules
// whose patterns they match.
type nameIndex struct {
	exact  map[string]int32 // name -> bitmap number in sets
	suffix map[string]int32 // "example.com" for "*.example.com"
	all    bitmap           // rules with "*"
	sets   bitmaps
}

func buildNameIndex(words int, n int, patterns func(i int) []string) *nameIndex {
	exact, suffix := map[string][]int32{}, map[string][]int32{}
	x := &nameIndex{exact: map[string]int32{}, suffix: map[string]int32{}, all: newBitmap(words), sets: bitmaps{words: words}}
	for i := 0; i < n; i++ {
		for _, p := range patterns(i) {
			name, wild, err := normalizeName(p)
			switch {
			case err != nil: // Compile already refused it
			case wild && name == "":
				x.all.set(i)
			case wild:
				suffix[name] = appendRule(suffix[name], int32(i))
			default:
				exact[name] = appendRule(exact[name], int32(i))
			}
		}
	}
	seen := map[string]int32{}
	intern := func(rules []int32) int32 {
		key := unsafe.String((*byte)(unsafe.Pointer(&rules[0])), len(rules)*4)
		if id, ok := seen[key]; ok {
			return id
		}
		b := newBitmap(words)
		for _, r := range rules {
			b.set(int(r))
		}
		id := int32(x.sets.add(b))
		seen[string([]byte(key))] = id
		return id
	}
	for name, rs := range exact {
		x.exact[name] = intern(rs)
	}
	for name, rs := range suffix {
		x.suffix[name] = intern(rs)
	}
	return x
}

// appendRule adds r to a list kept in rule order without repeats.
func appendRule(rs []int32, r int32) []int32 {
	if len(rs) > 0 && rs[len(rs)-1] == r {
		return rs
	}
	return append(rs, r)
}

// lookup writes into out the rules whose patterns match name (lower-case,
// no trailing dot).
func (x *nameIndex) lookup(name []byte, out bitmap) {
	copy(out, x.all)
	if id, ok := x.exact[string(name)]; ok {
		orInto(out, x.sets.at(int(id)))
	}
	if len(x.suffix) == 0 {
		return
	}
	for i, c := range name {
		if c == '.' {
			if id, ok := x.suffix[string(name[i+1:])]; ok {
				orInto(out, x.sets.at(int(id)))
			}
		}
	}
}

func orInto(dst, src bitmap) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] |= src[i]
	}
}

// payloadIndex is one automaton over the payload patterns of every rule.
type payloadIndex struct {
	m       *l7.Patterns
	patRule []int32 // pattern -> rule
}

func buildPayloadIndex(n int, patterns func(i int) [][]byte) (*payloadIndex, error) {
	x := &payloadIndex{}
	var ps []l7.Pattern
	for i := 0; i < n; i++ {
		for _, p := range patterns(i) {
			ps = append(ps, l7.Pattern{Bytes: p})
			x.patRule = append(x.patRule, int32(i))
		}
	}
	if len(ps) == 0 {
		return x, nil
	}
	m, err := l7.CompilePatterns(ps)
	if err != nil {
		return nil, err
	}
	x.m = m
	return x, nil
}

// lookup writes into out the rules with a pattern found in b; pats is
// scratch of at least m.SetWords() words.
func (x *payloadIndex) lookup(b []byte, pats []uint64, out bitmap) {
	clear(out)
	if x.m == nil {
		return
	}
	pats = pats[:x.m.SetWords()]
	clear(pats)
	if x.m.MatchSet(b, pats) == 0 {
		return
	}
	for w, word := range pats {
		for word != 0 {
			bit := word & -word
			word ^= bit
			out.set(int(x.patRule[w*64+bits.TrailingZeros64(bit)]))
		}
	}
}
