package verdict

import (
	"testing"

	"github.com/qguard/qguard/internal/pktbuild"
	"github.com/qguard/qguard/internal/testutil"
)

// TestTLSOracleRealHelloPipeline: a policy on the server name of real
// ClientHellos decides them whole, cut into two TCP segments at every
// offset, and re-cut into two TLS records at every offset of the handshake
// message (sent as one segment and as two).
func TestTLSOracleRealHelloPipeline(t *testing.T) {
	const recordHeader = 5
	c := mustCompile(t, &Policy{Default: ActionAccept, Rules: []Rule{
		{Name: "sni", Match: Match{SNI: []string{"*.blocked.test"}}, Action: ActionDrop},
	}})
	for _, name := range []string{"www.blocked.test", "www.allowed.test"} {
		rec := testutil.RealClientHello(t, name)
		if len(rec) < 1000 {
			t.Logf("ClientHello of %d bytes: one segment", len(rec))
		}
		hs := rec[recordHeader:]
		blocked := name == "www.blocked.test"
		p := NewPipeline(c, nil)
		port := uint16(1)
		check := func(what string, segs ...[]byte) {
			t.Helper()
			port++
			ds := dial(p, tc4, ts4, port, 443).sendAll(segs...)
			if passed(ds) == blocked {
				t.Fatalf("%s %s: %+v", what, name, ds)
			}
			if d := ds[len(ds)-1]; d.Rule == RulePending || d.Rule == RuleUndecided {
				t.Fatalf("%s %s: not decided by a rule: %+v", what, name, d)
			}
		}
		check("whole", rec)
		for cut := 1; cut < len(rec); cut++ {
			check("segments cut at "+itoa(cut), rec[:cut], rec[cut:])
		}
		for cut := 1; cut < len(hs); cut++ {
			two := append(pktbuild.Records(hs[:cut], 1<<14), pktbuild.Records(hs[cut:], 1<<14)...)
			check("records cut at "+itoa(cut), two)
			check("records cut at "+itoa(cut)+", segment at the record boundary", two[:recordHeader+cut], two[recordHeader+cut:])
		}
	}
}
