package l7

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coregx/ahocorasick"
)

// naiveMatch is the reference: the pattern ending earliest, lowest index
// first.
func naiveMatch(ps []Pattern, b []byte) int {
	for end := 1; end <= len(b); end++ {
		for i, p := range ps {
			if len(p.Bytes) > end {
				continue
			}
			w := b[end-len(p.Bytes) : end]
			if bytes.Equal(w, p.Bytes) || p.Fold && asciiEqualFold(w, p.Bytes) {
				return i
			}
		}
	}
	return -1
}

// asciiEqualFold folds ASCII letters only, like Patterns (bytes.EqualFold
// also folds Unicode, which a byte matcher must not).
func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func TestPatternsMatch(t *testing.T) {
	ps := []Pattern{
		{Bytes: []byte("GET /admin")},
		{Bytes: []byte("\x00\x01secret")},
		{Bytes: []byte("she")},
		{Bytes: []byte("he")},
		{Bytes: []byte("hers")},
		{Bytes: []byte("EVIL"), Fold: true},
		{Bytes: []byte("his")},
	}
	m, err := CompilePatterns(ps)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want int
	}{
		{"GET /admin HTTP/1.1", 0},
		{"xx\x00\x01secretyy", 1},
		{"ushers", 2}, // "she" and "he" end at the same byte: lowest index
		{"ahe", 3},
		{"an evIl plan", 5},
		{"this", 6},
		{"GET /Admin", -1},
		{"", -1},
		{"\x00\x01secre", -1},
	}
	for _, tt := range tests {
		if got := m.Match([]byte(tt.in)); got != tt.want {
			t.Errorf("Match(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	set := make([]uint64, m.SetWords())
	if n := m.MatchSet([]byte("ushers and his EVIL"), set); n != 5 || set[0] != 1<<2|1<<3|1<<4|1<<5|1<<6 {
		t.Errorf("MatchSet = %d, %b", n, set[0])
	}
}

// TestPatternsRandom compares the automaton with the naive reference on
// random patterns over a small alphabet, where overlaps are frequent.
func TestPatternsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcAB\x00\xff"[r.IntN(7)]
		}
		return b
	}
	for round := range 200 {
		ps := make([]Pattern, 1+r.IntN(12))
		for i := range ps {
			ps[i] = Pattern{Bytes: gen(1 + r.IntN(5)), Fold: r.IntN(2) == 0}
		}
		m, err := CompilePatterns(ps)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			in := gen(r.IntN(40))
			if got, want := m.Match(in), naiveMatch(ps, in); got != want {
				t.Fatalf("round %d: Match(%q) = %d, want %d; patterns %v", round, in, got, want, ps)
			}
			set := make([]uint64, m.SetWords())
			m.MatchSet(in, set)
			for i, p := range ps {
				found := naiveMatch([]Pattern{p}, in) == 0
				if got := set[0]&(1<<i) != 0; got != found {
					t.Fatalf("round %d: MatchSet(%q) pattern %d %q: %v, want %v", round, in, i, p.Bytes, got, found)
				}
			}
		}
	}
}

// TestPatternsStream splits the input at every offset: the state carried in
// PatternState must find a pattern that straddles the split.
func TestPatternsStream(t *testing.T) {
	m, err := CompilePatterns([]Pattern{{Bytes: []byte("secret")}, {Bytes: []byte("TOKEN"), Fold: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"xxsecretyy", "a token!"} {
		for cut := range len(in) {
			var st PatternState
			got := m.MatchFrom(&st, []byte(in[:cut]))
			if got < 0 {
				got = m.MatchFrom(&st, []byte(in[cut:]))
			}
			if got < 0 {
				t.Errorf("%q cut at %d: no match", in, cut)
			}
		}
	}
}

func TestCompilePatternsErrors(t *testing.T) {
	_, err := CompilePatterns([]Pattern{{Bytes: []byte("a")}, {}})
	if !errors.Is(err, ErrEmptyPattern) {
		t.Errorf("empty pattern: %v", err)
	}
	m, err := CompilePatterns(nil)
	if err != nil || m.Match([]byte("anything")) != -1 {
		t.Errorf("no patterns: %v", err)
	}
}

// benchPatterns returns n random 8-16 byte patterns (half case-insensitive
// when fold) and a 1400-byte payload of printable text containing none.
func benchPatterns(n int, fold bool) ([]Pattern, []byte) {
	r := rand.New(rand.NewPCG(3, 4))
	ps := make([]Pattern, n)
	for i := range ps {
		b := make([]byte, 8+r.IntN(9))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		ps[i] = Pattern{Bytes: b, Fold: fold && i%2 == 0}
	}
	payload := make([]byte, 1400)
	for i := range payload {
		payload[i] = byte(' ' + r.IntN(95))
	}
	return ps, payload
}

func TestPatternsAllocs(t *testing.T) {
	ps, payload := benchPatterns(100, true)
	m, err := CompilePatterns(ps)
	if err != nil {
		t.Fatal(err)
	}
	set := make([]uint64, m.SetWords())
	if n := testing.AllocsPerRun(100, func() {
		m.Match(payload)
		m.MatchSet(payload, set)
	}); n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func BenchmarkPatterns(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		for _, fold := range []bool{false, true} {
			ps, payload := benchPatterns(n, fold)
			m, err := CompilePatterns(ps)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("n=%d/fold=%v", n, fold), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					if m.Match(payload) >= 0 {
						b.Fatal("unexpected match")
					}
				}
			})
		}
	}
}

// BenchmarkCoregxAhocorasick measures github.com/coregx/ahocorasick on the
// same case-sensitive input, the alternative CompilePatterns was chosen over.
func BenchmarkCoregxAhocorasick(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		ps, payload := benchPatterns(n, false)
		bld := ahocorasick.NewBuilder()
		for _, p := range ps {
			bld.AddPattern(p.Bytes)
		}
		ac, err := bld.Build()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, ok := ac.Find(payload, 0); ok {
					b.Fatal("unexpected match")
				}
			}
		})
	}
}
