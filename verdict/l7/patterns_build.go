package l7

// build compiles patterns into a. With fold, ASCII letters are folded to
// lowercase in both the patterns and the byte classes, and verify marks the
// patterns whose hits must be confirmed against the input.
func (a *automaton) build(patterns [][]byte, verify []bool, fold bool) error {
	norm := func(c byte) byte {
		if fold {
			return lower(c)
		}
		return c
	}
	a.buildClasses(patterns, norm, fold)
	t := newTrie()
	for i, p := range patterns {
		t.insert(p, norm, int32(i))
	}
	if int64(len(t.nodes))*int64(a.stride) > maxPatternTable {
		return ErrPatternsTooLarge
	}
	a.buildDFA(t, verify)
	return nil
}

// buildClasses gives every byte that occurs in a pattern its own class and
// lumps all other bytes into class 0; with fold, a letter's two cases share
// a class. The class count is the stride of the transition table, so
// patterns over a small alphabet give a small table.
func (a *automaton) buildClasses(patterns [][]byte, norm func(byte) byte, fold bool) {
	var used [256]bool
	for _, p := range patterns {
		for _, c := range p {
			used[norm(c)] = true
		}
	}
	next := int32(1)
	for c := range 256 {
		if used[c] {
			a.class[c] = next
			next++
		}
	}
	if fold {
		for c := 'A'; c <= 'Z'; c++ {
			a.class[c] = a.class[c+'a'-'A']
		}
	}
	a.stride = next
}

// trie is the build-time keyword tree: one node per pattern prefix.
type trie struct {
	nodes []trieNode
}

type trieNode struct {
	next map[byte]int32
	out  []int32
	fail int32
}

func newTrie() *trie { return &trie{nodes: []trieNode{{next: map[byte]int32{}}}} }

func (t *trie) insert(p []byte, norm func(byte) byte, id int32) {
	s := int32(0)
	for _, c := range p {
		c = norm(c)
		n, ok := t.nodes[s].next[c]
		if !ok {
			n = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{next: map[byte]int32{}})
			t.nodes[s].next[c] = n
		}
		s = n
	}
	t.nodes[s].out = append(t.nodes[s].out, id)
}

// buildDFA computes failure links breadth first and fills the full
// transition table: a missing edge follows the failure link's transition,
// which is already final because BFS visits shallower states first.
func (a *automaton) buildDFA(t *trie, verify []bool) {
	n := int32(len(t.nodes))
	stride := a.stride
	next := make([]int32, n*stride) // state indexes, not yet premultiplied
	a.first = make([]int32, n)
	a.own = make([][]int32, n)
	a.check = make([]bool, n)
	a.dict = make([]int32, n)
	// reps: one byte per class, the one the trie edges use. Walking down
	// from 255 picks the lowercase letter of a folded class, which is what
	// insert stored.
	var rep [256]bool
	var reps []byte
	for c := 255; c >= 0; c-- {
		if cl := a.class[c]; cl != 0 && !rep[cl] {
			rep[cl] = true
			reps = append(reps, byte(c))
		}
	}
	queue := make([]int32, 0, n)
	queue = append(queue, 0)
	a.first[0], a.dict[0] = -1, -1
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		node := &t.nodes[s]
		f := node.fail
		for cl := int32(0); cl < stride; cl++ {
			if s != 0 {
				next[s*stride+cl] = next[f*stride+cl]
			}
		}
		for _, c := range reps {
			child, ok := node.next[c]
			if !ok {
				continue
			}
			cl := a.class[c]
			if s == 0 {
				t.nodes[child].fail = 0
			} else {
				t.nodes[child].fail = next[f*stride+cl]
			}
			next[s*stride+cl] = child
			queue = append(queue, child)
		}
		a.setOutput(t, s, verify)
	}
	for c := range 256 {
		a.skip[c] = next[a.class[c]] == 0
	}
	a.trans = make([]int32, len(next))
	for i, target := range next {
		v := target * stride
		if a.first[target] >= 0 {
			v = ^v
		}
		a.trans[i] = v
	}
}

// setOutput records the patterns ending at state s: its own and, through
// the failure chain, every pattern that is a suffix of its prefix.
func (a *automaton) setOutput(t *trie, s int32, verify []bool) {
	node := &t.nodes[s]
	a.own[s] = node.out
	best := int32(-1)
	for _, p := range node.out {
		if best < 0 || p < best {
			best = p
		}
		a.check[s] = a.check[s] || verify[p]
	}
	a.dict[s] = -1
	if s != 0 {
		f := node.fail
		if len(a.own[f]) > 0 {
			a.dict[s] = f
		} else {
			a.dict[s] = a.dict[f]
		}
		a.check[s] = a.check[s] || a.check[f]
		if x := a.first[f]; x >= 0 && (best < 0 || x < best) {
			best = x
		}
	}
	a.first[s] = best
}
