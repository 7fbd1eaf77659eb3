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

func TestSet(t *testing.T) {
	type mode uint8
	m := mode(9)
	if err := Set(&m, []byte("b"), "mode", errTest, "", "a", "b"); err != nil || m != 2 {
		t.Errorf("Set b: %d, %v", m, err)
	}
	if err := Set(&m, []byte("c"), "mode", errTest, "", "a", "b"); !errors.Is(err, errTest) || m != 2 {
		t.Errorf("Set c: %d, %v; want the value kept and the sentinel", m, err)
	}
}
