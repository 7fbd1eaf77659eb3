package rules

import (
	"bytes"
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chainRules returns the rule lines of every chain in a listing (nft's or
// Show's), by chain name, leaving out sets and the chains' type lines.
func chainRules(listing string) map[string][]string {
	out := map[string][]string{}
	chain := ""
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "chain ") && strings.HasSuffix(l, "{"):
			chain = strings.Fields(l)[1]
			out[chain] = []string{}
		case l == "}":
			chain = ""
		case chain == "" || l == "" || strings.HasPrefix(l, "type ") || strings.HasPrefix(l, "#"):
		default:
			out[chain] = append(out[chain], l)
		}
	}
	return out
}

// TestIntegrationShowMatchesNft: every rule Show prints reads exactly as
// `nft list table` prints it (anonymous sets written out, ct flags by
// name, dependencies left out), on each queue path the kernel has; on the
// compat path Show explains nft's iptables-nft warnings.
func TestIntegrationShowMatchesNft(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft is not installed")
	}
	for _, impl := range queueImpls(t) {
		t.Run(impl.String(), func(t *testing.T) {
			ns, fd := testNS(t)
			cfg := listingConfig(fd)
			cfg.Queue = impl
			cfg.Hooks = []Hook{{Name: "forward"}, {Name: "input", Priority: 5}}
			m := applied(t, cfg)
			if err := m.BlockSource(netip.MustParseAddr("192.0.2.7"), time.Minute); err != nil {
				t.Fatal(err)
			}
			show := showNS(t, fd, "qguard")
			// Only qguard's table is in this namespace. nft writes its
			// complaints about the compat target to stderr.
			var stdout, stderr bytes.Buffer
			c := ns.Command(context.Background(), "nft", "list", "ruleset")
			c.Stdout, c.Stderr = &stdout, &stderr
			if err := c.Run(); err != nil {
				t.Fatalf("nft list ruleset: %v\n%s", err, stderr.String())
			}
			listing := stdout.String()
			got, want := chainRules(show), chainRules(listing)
			if len(want) == 0 {
				t.Fatalf("no chains in nft's listing:\n%s", listing)
			}
			for chain, rules := range want {
				g := got[chain]
				if strings.Join(g, "\n") != strings.Join(rules, "\n") {
					t.Errorf("chain %s:\nShow:\n%s\nnft:\n%s", chain, strings.Join(g, "\n"), strings.Join(rules, "\n"))
				}
			}
			if len(got) != len(want) {
				t.Errorf("Show has %d chains, nft %d", len(got), len(want))
			}
			for _, w := range []string{"type filter hook forward priority filter; policy accept;", "type filter hook input priority filter + 5;",
				"\tiifname @steer_iifname_g1", "th dport { 53, 8000-8100 }", "ct state related ct direction reply ct status ! confirmed"} {
				if !strings.Contains(show, w) {
					t.Errorf("Show lacks %q:\n%s", w, show)
				}
			}
			compat := strings.Contains(stderr.String(), "managed by iptables-nft")
			if explained := strings.Contains(show, `"# Warning: table inet qguard is managed by`); compat != explained {
				t.Errorf("nft warns about iptables-nft: %v; Show explains it: %v\n%s", compat, explained, show)
			}
			if impl == QueueCompat && !compat {
				t.Logf("this nft does not warn about the compat target")
			}
			if t.Failed() {
				t.Logf("Show:\n%s\nnft:\n%s", show, listing)
			}
		})
	}
}
