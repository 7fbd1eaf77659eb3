package enumtext

import (
	"errors"
	"testing"
)

var errTest = errors.New("test sentinel")

func TestParse(t *testing.T) {
	names := []string{"", "batch", "vectored", "per-packet"}
	for i, n := range names[1:] {
		if got, err := Parse([]byte(n), "verdict mode", errTest, names...); err != nil || got != i+1 {
			t.Errorf("Parse(%q) = %d, %v; want %d", n, got, err, i+1)
		}
	}
	for _, bad := range []string{"", "perpacket", "Batch", " batch"} {
		_, err := Parse([]byte(bad), "verdict mode", errTest, names...)
		want := `unknown verdict mode "` + bad + `"; expected one of: batch, vectored, per-packet`
		if err == nil || err.Error() != want || !errors.Is(err, errTest) {
			t.Errorf("Parse(%q): %v; want %q matching the sentinel", bad, err, want)
		}
	}
}
