package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/qguard/qguard/verdict"
)

// flows.max beyond verdict.MaxFlowCapacity is refused with the memory it
// would take, not allocated (run died of a Go out-of-memory error).
func TestFlowsMaxBound(t *testing.T) {
	for _, tc := range []struct {
		max  string
		want string // "" for accepted
	}{
		{"8", ""},
		{"16777216", ""},
		{"7", "flows.max: 7 is out of range; expected 8 to 16777216"},
		{"16777217", "flows.max: 16777217 needs 2 GiB per queue (64 bytes a flow, rounded up to a power of two); the limit is 16777216 (1 GiB per queue)"},
		{"1073741824", "flows.max: 1073741824 needs 64 GiB per queue"},
		{"9223372036854775807", "needs more than 1 EiB per queue"},
	} {
		f, err := Parse("flows.yaml", []byte("flows:\n  max: "+tc.max+"\n"))
		if tc.want == "" {
			if err != nil || f.Flows.Capacity == 0 {
				t.Errorf("flows.max %s: %v", tc.max, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "flows.yaml:2:8: flows.max: ") ||
			!strings.Contains(err.Error(), tc.want) {
			t.Errorf("flows.max %s: %v, want %q", tc.max, err, tc.want)
		}
	}
	if verdict.FlowEntrySize != 64 {
		t.Logf("FlowEntrySize is %d; the messages above assume 64", verdict.FlowEntrySize)
	}
}

func TestFormatBytes(t *testing.T) {
	for b, want := range map[uint64]string{0: "0 bytes", 512: "512 bytes", 1 << 20: "1 MiB", 3 << 29: "1.5 GiB", 1 << 36: "64 GiB"} {
		if got := FormatBytes(b); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", b, got, want)
		}
	}
}
