package rules

import (
	"testing"

	"github.com/google/nftables"
)

func TestParseGen(t *testing.T) {
	for _, tc := range []struct {
		name string
		stem string
		n    uint64
		ok   bool
	}{
		{"forward_g1", "forward", 1, true},
		{"steer_iifname_g12", "steer_iifname", 12, true},
		{"postrouting_g18446744073709551615", "postrouting", 1<<64 - 1, true},
		{"forward", "", 0, false},
		{"forward_g", "", 0, false},
		{"forward_g0", "", 0, false},
		{"forward_g01", "", 0, false},
		{"forward_g1x", "", 0, false},
		{"forward_g-1", "", 0, false},
		{"_g3", "", 0, false},
		{"forward_g18446744073709551616", "", 0, false},
		{"forward_p7", "", 0, false},
	} {
		stem, n, ok := parseGen(tc.name)
		if stem != tc.stem || n != tc.n || ok != tc.ok {
			t.Errorf("parseGen(%q) = %q, %d, %v; want %q, %d, %v", tc.name, stem, n, ok, tc.stem, tc.n, tc.ok)
		}
	}
	if got := genName("forward", 3); got != "forward_g3" {
		t.Errorf("genName = %q", got)
	}
}

func TestNextGenAndBaseName(t *testing.T) {
	num := nftables.ChainHook(2)
	chains := map[string]*nftables.Chain{
		"forward":     {Name: "forward", Hooknum: &num},
		"forward_g4":  {Name: "forward_g4"},
		"input_g9":    {Name: "input_g9"},
		"forward_g99": {Name: "forward_g99", Hooknum: &num}, // a base chain: no generation
	}
	sets := map[string]bool{"steer_oifname_g11": true, "block4": true, "other_g50": true}
	if got := nextGen(chains, sets); got != 12 {
		t.Errorf("nextGen = %d, want 12 (one past steer_oifname_g11)", got)
	}
	if got := nextGen(map[string]*nftables.Chain{}, map[string]bool{}); got != 1 {
		t.Errorf("nextGen of an empty table = %d, want 1", got)
	}
	taken := func(names ...string) func(string) bool {
		return func(n string) bool {
			for _, x := range names {
				if x == n {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		h     Hook
		taken []string
		want  string
	}{
		{Hook{"forward", 0}, nil, "forward"},
		{Hook{"forward", 7}, []string{"forward"}, "forward_p7"},
		{Hook{"output", -150}, []string{"output"}, "output_pm150"},
		{Hook{"input", 5}, []string{"input", "input_p5"}, "input_p5_2"},
	} {
		if got := baseName(tc.h, taken(tc.taken...)); got != tc.want {
			t.Errorf("baseName(%v) with %v taken = %q, want %q", tc.h, tc.taken, got, tc.want)
		}
	}
}
