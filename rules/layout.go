package rules

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// Names of the table's chains and per-generation sets (see the package
// documentation, "Table"):
//
//   - base chains: "<hook>", or "<hook>_p<prio>" ("_pm<n>" for a negative
//     priority) when a chain of that name is on another priority;
//   - generation chains: "<hook>_g<n>", regular chains holding the rules;
//   - steering sets of generation n: "steer_iifname_g<n>", "steer_oifname_g<n>";
//   - rate limits of generation n (compile_ratelimit.go): chains
//     "rl_<rule>_g<n>", their sets "rl_<rule>_c_g<n>" (connections),
//     "rl_<rule>_s4_g<n>", "rl_<rule>_s6_g<n>", "rl_<rule>_f_g<n>" (buckets).
const genMark = "_g"

// genName is name in generation n.
func genName(name string, n uint64) string {
	return name + genMark + strconv.FormatUint(n, 10)
}

// parseGen splits a generation chain or set name into its stem and
// generation; ok is false for any other name.
func parseGen(name string) (stem string, n uint64, ok bool) {
	i := strings.LastIndex(name, genMark)
	if i <= 0 {
		return "", 0, false
	}
	digits := name[i+len(genMark):]
	if digits == "" || digits[0] == '0' || strings.TrimLeft(digits, "0123456789") != "" {
		return "", 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return name[:i], n, true
}

// genSet reports whether name is a set that belongs to a generation (a
// steering set, the rate limits' sets and maps), or the unsuffixed
// steering set of the previous layout.
func genSet(name string) bool {
	stem, _, ok := parseGen(name)
	if ok && strings.HasPrefix(stem, rateStem) {
		return true
	}
	if ok {
		name = stem
	}
	return name == inIfSet || name == outIfSet || strings.HasPrefix(name, nameSetStem)
}

// nextGen is one past the highest generation any chain or set of the
// table carries, so a new generation never meets a leftover of a failed one.
func nextGen(chains map[string]*nftables.Chain, sets map[string]bool) uint64 {
	var top uint64
	see := func(name string) {
		if _, n, ok := parseGen(name); ok && n > top {
			top = n
		}
	}
	for name, ch := range chains {
		if ch.Hooknum == nil {
			see(name)
		}
	}
	for name := range sets {
		if genSet(name) {
			see(name)
		}
	}
	return top + 1
}

// baseName picks the name of a new base chain for h: the hook's name, or
// one with the priority in it when that name is taken.
func baseName(h Hook, taken func(string) bool) string {
	if !taken(h.Name) {
		return h.Name
	}
	p := strconv.FormatInt(int64(h.Priority), 10)
	if h.Priority < 0 {
		p = "m" + p[1:]
	}
	name := h.Name + "_p" + p
	for i := 2; taken(name); i++ {
		name = h.Name + "_p" + p + "_" + strconv.Itoa(i)
	}
	return name
}

// isBase reports whether ch is a base chain (registered on a hook).
func isBase(ch *nftables.Chain) bool { return ch.Hooknum != nil }

// onHook reports whether base chain ch sits on h's hook and priority as a
// filter chain (hook and priority cannot change in the kernel).
func onHook(ch *nftables.Chain, h Hook) bool {
	return ch.Hooknum != nil && uint32(*ch.Hooknum) == hookNums[h.Name] &&
		ch.Priority != nil && int32(*ch.Priority) == h.Priority && ch.Type == nftables.ChainTypeFilter
}

// hookName is the name of base chain ch's hook, "" for a regular chain.
func hookName(ch *nftables.Chain) string {
	if ch.Hooknum == nil {
		return ""
	}
	for name, n := range hookNums {
		if n == uint32(*ch.Hooknum) {
			return name
		}
	}
	return "hook" + strconv.FormatUint(uint64(*ch.Hooknum), 10)
}

// sortedNames returns m's keys in order: chains and sets are walked so,
// for batches and reports that do not depend on map order.
func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
