package l7

import (
	"testing"

	"github.com/qguard/qguard/internal/testutil"
)

// TestTLSOracleRealHello: the server name of real ClientHellos, whole and
// cut into two TCP segments at every offset (the pipeline's share of this
// oracle is verdict's TestTLSOracleRealHelloPipeline).
func TestTLSOracleRealHello(t *testing.T) {
	for _, name := range []string{"www.blocked.test", "www.allowed.test"} {
		rec := testutil.RealClientHello(t, name)
		buf := make([]byte, MaxNameLen)
		if got, st := TLSServerName(rec, buf[:0]); st != Found || string(got) != name {
			t.Fatalf("whole hello: %q %s", got, st)
		}
		for cut := 1; cut < len(rec); cut++ {
			var h HelloBuffer
			h.Add(7, rec[:cut])
			if st := h.Add(7+uint32(cut), rec[cut:]); st != Found || string(h.ServerName()) != name {
				t.Fatalf("HelloBuffer cut at %d: %q %s", cut, h.ServerName(), st)
			}
		}
	}
}
