package verdict

import "testing"

// FlowTableBytes is what NewFlowTable allocates: its rounded capacity times
// FlowEntrySize.
func TestFlowTableBytes(t *testing.T) {
	for _, c := range []int{0, 1, 8, 1000, DefaultFlowCapacity, DefaultFlowCapacity + 1} {
		got := FlowTableBytes(c)
		want := uint64(NewFlowTable(&FlowConfig{Capacity: c}).Stats().Capacity * FlowEntrySize)
		if got != want {
			t.Errorf("FlowTableBytes(%d) = %d, want %d", c, got, want)
		}
	}
	if got := FlowTableBytes(MaxFlowCapacity); got != 1<<30 {
		t.Errorf("FlowTableBytes(MaxFlowCapacity) = %d, want 1 GiB", got)
	}
	if got := FlowTableBytes(1 << 62); got == 0 || got < FlowTableBytes(1<<40) {
		t.Errorf("FlowTableBytes(1<<62) = %d: does not saturate", got)
	}
}
