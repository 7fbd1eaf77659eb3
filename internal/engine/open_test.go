package engine

import (
	"slices"
	"testing"
)

// A failure half-way undoes exactly the steps done, last first, once.
func TestUndoStack(t *testing.T) {
	var got []string
	var u undoStack
	for _, step := range []string{"links", "queues", "table"} {
		u.push(func() { got = append(got, step) })
	}
	u.run()
	u.run()
	if want := []string{"table", "queues", "links"}; !slices.Equal(got, want) {
		t.Errorf("undo order %v, want %v", got, want)
	}
}
