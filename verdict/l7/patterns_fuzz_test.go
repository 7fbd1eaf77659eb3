package l7

import "testing"

// FuzzPatterns compares the automaton with the naive reference, with the
// input split in two to exercise the stream state.
func FuzzPatterns(f *testing.F) {
	f.Add([]byte("he"), []byte("SHE"), []byte("ushers"), uint8(3))
	f.Fuzz(func(t *testing.T, p1, p2, in []byte, cut uint8) {
		if len(p1) == 0 || len(p2) == 0 || len(p1) > 40 || len(p2) > 40 {
			return
		}
		ps := []Pattern{{Bytes: p1}, {Bytes: p2, Fold: true}}
		m, err := CompilePatterns(ps)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveMatch(ps, in)
		if got := m.Match(in); got != want {
			t.Fatalf("Match = %d, want %d", got, want)
		}
		c := min(int(cut), len(in))
		var st PatternState
		got := m.MatchFrom(&st, in[:c])
		if got < 0 {
			got = m.MatchFrom(&st, in[c:])
		}
		if (got >= 0) != (want >= 0) && len(p1) <= patternTail {
			t.Fatalf("stream cut at %d: %d, want %d", c, got, want)
		}
	})
}
