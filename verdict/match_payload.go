package verdict

import (
	"bytes"
	"fmt"

	"github.com/qguard/qguard/verdict/l7"
)

// payloadSet matches a rule's byte patterns anywhere in a packet's payload
// with one pass of a Patterns automaton, whatever the number of patterns.
type payloadSet struct {
	pats [][]byte
	m    *l7.Patterns
}

func newPayloadSet(pats [][]byte) (*payloadSet, error) {
	s := &payloadSet{}
	ps := make([]l7.Pattern, len(pats))
	for i, p := range pats {
		s.pats = append(s.pats, bytes.Clone(p))
		ps[i] = l7.Pattern{Bytes: s.pats[i]}
	}
	m, err := l7.CompilePatterns(ps)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	s.m = m
	return s, nil
}

// match returns the index of the pattern found in b, or -1.
func (s *payloadSet) match(b []byte) int { return s.m.Match(b) }
