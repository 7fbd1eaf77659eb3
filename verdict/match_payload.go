package verdict

import (
	"bytes"
	"fmt"
)

// payloadSet matches a rule's byte patterns anywhere in a packet's payload
// with one pass of a Patterns automaton, whatever the number of patterns.
type payloadSet struct {
	pats [][]byte
	m    *Patterns
}

func newPayloadSet(pats [][]byte) (*payloadSet, error) {
	s := &payloadSet{}
	ps := make([]Pattern, len(pats))
	for i, p := range pats {
		s.pats = append(s.pats, bytes.Clone(p))
		ps[i] = Pattern{Bytes: s.pats[i]}
	}
	m, err := CompilePatterns(ps)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	s.m = m
	return s, nil
}

// match returns the index of the pattern found in b, or -1.
func (s *payloadSet) match(b []byte) int { return s.m.Match(b) }
