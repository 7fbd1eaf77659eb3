package verdict

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrBadPattern is wrapped by Compile for an empty payload pattern.
var ErrBadPattern = errors.New("bad payload pattern")

// payloadSet matches byte patterns anywhere in a packet's payload.
type payloadSet struct {
	pats [][]byte
}

func newPayloadSet(pats [][]byte) (*payloadSet, error) {
	s := &payloadSet{}
	for i, p := range pats {
		if len(p) == 0 {
			return nil, fmt.Errorf("pattern %d: %w: empty", i, ErrBadPattern)
		}
		s.pats = append(s.pats, bytes.Clone(p))
	}
	return s, nil
}

// match returns the index of the first pattern found in b, or -1.
func (s *payloadSet) match(b []byte) int {
	for i, p := range s.pats {
		if bytes.Contains(b, p) {
			return i
		}
	}
	return -1
}
