package verdict

import (
	"math/bits"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/gaissmai/bart"

	"github.com/qguard/qguard/verdict/packet"
)

// The index narrows the rules a packet can match before any rule is checked.
// For each dimension it answers "which rules could match this value" as a
// bitmap over rule numbers; ANDing the bitmaps of family, protocol, source
// and destination prefix and port, and input and output interface yields the
// candidates, which are then checked in order for their remaining matchers
// (mark, socket owner, conntrack state, L7: see index_l7.go). Every
// dimension is exact, so a candidate only needs its other matchers checked.
//
// Prefixes: all prefixes of all rules go in one bart table per direction
// whose value names a bitmap of the rules matching any address the prefix
// covers. Because a longest-prefix lookup returns only the most specific
// prefix, each stored bitmap also holds the rules of every covering prefix
// (pushed down at compile time). A 100,000-prefix set costs one lookup.
//
// Ports: every distinct boundary of the rules' ranges splits 0-65535 into
// intervals; a 64 K array maps a port to its interval, whose bitmap lists
// the rules matching it.

// bitmap is a set of rule numbers, one bit per rule.
type bitmap []uint64

func (b bitmap) set(i int) { b[i>>6] |= 1 << (uint(i) & 63) }

func (b bitmap) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }

// bitmaps is a flat arena of bitmaps of equal width.
type bitmaps struct {
	words int
	data  []uint64
}

func (a *bitmaps) at(i int) bitmap { return a.data[i*a.words : (i+1)*a.words] }

func (a *bitmaps) add(b bitmap) int {
	a.data = append(a.data, b...)
	return len(a.data)/a.words - 1
}

type index struct {
	words        int
	fam          [2]bitmap // [0] IPv4, [1] IPv6
	proto        bitmaps   // 256 bitmaps
	sport, dport portIndex
	src, dst     prefixIndex
	inIf, outIf  ifIndex
	// inName, outName add the rules matching interface names; nil when no
	// rule has one.
	inName, outName *ifNameIndex
}

// ifIndex maps an interface index to the rules it may match: those
// listing it and those without an interface matcher.
type ifIndex struct {
	small [256]int32       // ifindex -> bitmap number, for the usual small indexes
	big   map[uint32]int32 // the others
	sets  bitmaps          // bitmap 0: rules without the matcher
}

// buildIfIndex indexes the interface indexes get returns for each of n
// rules; has says whether the rule has the matcher at all (names included).
func buildIfIndex(n, words int, get func(i int) (l []uint32, has bool)) ifIndex {
	x := ifIndex{big: map[uint32]int32{}, sets: bitmaps{words: words}}
	none := newBitmap(words)
	byIf := map[uint32][]int{}
	for i := 0; i < n; i++ {
		l, has := get(i)
		if !has {
			none.set(i)
		}
		for _, v := range l {
			byIf[v] = append(byIf[v], i)
		}
	}
	x.sets.add(none)
	for v, rules := range byIf {
		id := int32(x.sets.add(none))
		b := x.sets.at(int(id))
		for _, r := range rules {
			b.set(r)
		}
		if v < uint32(len(x.small)) {
			x.small[v] = id
		} else {
			x.big[v] = id
		}
	}
	return x
}

func (x *ifIndex) lookup(v uint32) bitmap {
	if v < uint32(len(x.small)) {
		return x.sets.at(int(x.small[v]))
	}
	return x.sets.at(int(x.big[v])) // 0 when absent: rules without the matcher
}

type portIndex struct {
	class []uint16 // port -> interval
	sets  bitmaps  // interval -> rules
	none  bitmap   // rules without a port matcher: used for packets without ports
}

type prefixIndex struct {
	table *bart.Table[uint32] // prefix -> bitmap number in sets
	sets  bitmaps
	none  bitmap // rules without a prefix matcher: used when no prefix covers the address
}

// candidates writes into out the rules the packet may match.
func (x *index) candidates(p *packet.Packet, m *Meta, out bitmap) {
	fam := x.fam[0]
	if p.Family == 6 {
		fam = x.fam[1]
	}
	proto := x.proto.at(int(p.Proto))
	sp, dp := x.sport.none, x.dport.none
	if p.HasPorts() {
		sp = x.sport.sets.at(int(x.sport.class[p.SrcPort]))
		dp = x.dport.sets.at(int(x.dport.class[p.DstPort]))
	}
	src := x.src.lookup(p.Src)
	dst := x.dst.lookup(p.Dst)
	in, outIf := x.inIf.lookup(m.InIf), x.outIf.lookup(m.OutIf)
	out = out[:len(fam)]
	proto, sp, dp, src, dst = proto[:len(out)], sp[:len(out)], dp[:len(out)], src[:len(out)], dst[:len(out)]
	in, outIf = in[:len(out)], outIf[:len(out)]
	if x.inName == nil && x.outName == nil {
		for i := range out {
			out[i] = fam[i] & proto[i] & sp[i] & dp[i] & src[i] & dst[i] & in[i] & outIf[i]
		}
		return
	}
	// ifIndex leaves out the rules matching by name: they come from the
	// interfaces' names.
	inN, outN := x.nameLookup(x.inName, m.InIf, in), x.nameLookup(x.outName, m.OutIf, outIf)
	inN, outN = inN[:len(out)], outN[:len(out)]
	for i := range out {
		out[i] = fam[i] & proto[i] & sp[i] & dp[i] & src[i] & dst[i] & (in[i] | inN[i]) & (outIf[i] | outN[i])
	}
}

// nameLookup returns the rules matching the name of interface i; when no
// rule has a name pattern on that side, none (idx already covers them).
func (x *index) nameLookup(n *ifNameIndex, i uint32, idx bitmap) bitmap {
	if n == nil {
		return idx
	}
	return n.lookup(i)
}

func (x *prefixIndex) lookup(a netip.Addr) bitmap {
	if v, ok := x.table.Lookup(a); ok {
		return x.sets.at(int(v))
	}
	return x.none
}

// nextBit returns the lowest set bit of b at or after i, or -1.
func nextBit(b bitmap, i int) int {
	w := i >> 6
	if w >= len(b) {
		return -1
	}
	cur := b[w] &^ (1<<(uint(i)&63) - 1)
	for {
		if cur != 0 {
			return w<<6 + bits.TrailingZeros64(cur)
		}
		w++
		if w >= len(b) {
			return -1
		}
		cur = b[w]
	}
}

func newBitmap(words int) bitmap { return make(bitmap, words) }

// buildPortIndex indexes the ranges returned by get for each of n rules.
func buildPortIndex(n, words int, get func(i int) []PortRange) portIndex {
	bounds := []int{0}
	none := newBitmap(words)
	for i := 0; i < n; i++ {
		rs := get(i)
		if len(rs) == 0 {
			none.set(i)
		}
		for _, r := range rs {
			bounds = append(bounds, int(r.Lo))
			if r.Hi < 65535 {
				bounds = append(bounds, int(r.Hi)+1)
			}
		}
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	x := portIndex{class: make([]uint16, 65536), sets: bitmaps{words: words}, none: none}
	for c := range bounds {
		x.sets.add(none)
		end := 65536
		if c+1 < len(bounds) {
			end = bounds[c+1]
		}
		for port := bounds[c]; port < end; port++ {
			x.class[port] = uint16(c)
		}
	}
	for i := 0; i < n; i++ {
		for _, r := range get(i) {
			c, _ := slices.BinarySearch(bounds, int(r.Lo))
			for ; c < len(bounds) && bounds[c] <= int(r.Hi); c++ {
				x.sets.at(c).set(i)
			}
		}
	}
	return x
}

// prefixSource lists the prefixes one rule matches on: its own and those
// of named sets, which are shared between rules.
type prefixSource struct {
	own  []netip.Prefix
	sets []string
}

// buildPrefixIndex indexes the prefixes of n rules. setPrefixes resolves set
// names.
func buildPrefixIndex(n, words int, get func(i int) prefixSource, sets map[string][]netip.Prefix) prefixIndex {
	rulesOf := map[netip.Prefix][]int32{}
	setUsers := map[string][]int32{}
	none := newBitmap(words)
	for i := 0; i < n; i++ {
		s := get(i)
		if len(s.own) == 0 && len(s.sets) == 0 {
			none.set(i)
		}
		for _, p := range s.own {
			p = p.Masked()
			rulesOf[p] = append(rulesOf[p], int32(i))
		}
		for _, name := range s.sets {
			setUsers[name] = append(setUsers[name], int32(i))
		}
	}
	for name, users := range setUsers {
		for _, p := range sets[name] {
			p = p.Masked()
			rulesOf[p] = append(rulesOf[p], users...)
		}
	}
	tmp := new(bart.Table[int32])
	lists := make([][]int32, 0, len(rulesOf))
	for p, rs := range rulesOf {
		tmp.Insert(p, int32(len(lists)))
		lists = append(lists, rs)
	}
	x := prefixIndex{table: new(bart.Table[uint32]), sets: bitmaps{words: words}, none: none}
	seen := map[string]uint32{}
	cur := newBitmap(words)
	for p := range rulesOf {
		copy(cur, none)
		for _, li := range tmp.Supernets(p) {
			for _, r := range lists[li] {
				cur.set(int(r))
			}
		}
		key := unsafe.String((*byte)(unsafe.Pointer(&cur[0])), len(cur)*8)
		id, ok := seen[key]
		if !ok {
			id = uint32(x.sets.add(cur))
			seen[string([]byte(key))] = id
		}
		x.table.Insert(p, id)
	}
	return x
}
