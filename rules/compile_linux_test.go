package rules

import (
	"strings"
	"testing"

	"github.com/qguard/qguard/internal/testutil"
)

// TestIntegrationCompileShow installs a policy with every matcher and
// action in the kernel and compares `rules show` with the golden text
// (go test ./rules -run CompileShow -update rewrites it; review the diff
// like code).
func TestIntegrationCompileShow(t *testing.T) {
	_, fd := testNS(t)
	cfg := &Config{Table: "kf", Mode: KernelFirst, Policy: samplePolicy(), NetNS: fd,
		Hooks: []Hook{{Name: "forward"}, {Name: "output", Priority: 5}},
		Steer: Steer{Protocols: []string{"tcp", "udp", "icmp", "icmpv6"}}, Bypass: true}
	applied(t, cfg)
	got := showNS(t, fd, "kf")
	got = got[strings.Index(got, "\n")+1:] // the probe line depends on the kernel
	testutil.Golden(t, "testdata/compile_show.txt", []byte(got))
}
