package l7

import "testing"

func TestStatusString(t *testing.T) {
	for s := Unset; s < numStatus; s++ {
		if n := s.String(); n == "" || n == "unknown status" {
			t.Errorf("Status(%d) has no name", s)
		}
	}
	if Status(99).String() != "unknown status" {
		t.Error("out-of-range status")
	}
}
