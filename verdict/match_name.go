package verdict

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadName is wrapped by Compile for a DNS name, server name or host
// pattern that is not a valid name or "*.name" wildcard.
var ErrBadName = errors.New("bad name pattern")

// nameSet matches DNS-style names exactly or by wildcard suffix. Both kinds
// are Go maps keyed by the lower-case name; a suffix is looked up once per
// label of the packet's name, so the cost grows with the name's labels, not
// with the number of patterns, and indexing a map with string(b) does not
// allocate.
type nameSet struct {
	exact  map[string]struct{}
	suffix map[string]struct{} // "*.example.com" is stored as "example.com"
	all    bool                // "*" matches any name
}

func newNameSet(patterns []string) (*nameSet, error) {
	s := &nameSet{exact: map[string]struct{}{}, suffix: map[string]struct{}{}}
	for _, p := range patterns {
		n, wild, err := normalizeName(p)
		if err != nil {
			return nil, err
		}
		switch {
		case wild && n == "":
			s.all = true
		case wild:
			s.suffix[n] = struct{}{}
		default:
			s.exact[n] = struct{}{}
		}
	}
	return s, nil
}

// normalizeName validates a pattern and returns it lower-cased without the
// "*." prefix or a trailing dot.
func normalizeName(p string) (name string, wild bool, err error) {
	if p == "*" {
		return "", true, nil
	}
	if strings.HasPrefix(p, "*.") {
		wild, p = true, p[2:]
	}
	p = strings.TrimSuffix(strings.ToLower(p), ".")
	if p == "" || len(p) > 253 {
		return "", false, fmt.Errorf("%q: %w: expected a name like example.com or *.example.com", p, ErrBadName)
	}
	for _, label := range strings.Split(p, ".") {
		if label == "" || len(label) > 63 {
			return "", false, fmt.Errorf("%q: %w: empty or over-long label", p, ErrBadName)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false, fmt.Errorf("%q: %w: character %q not allowed (a \"*.\" wildcard may only lead)", p, ErrBadName, c)
			}
		}
	}
	return p, wild, nil
}

// match reports whether name (lower-case, no trailing dot) is in the set.
func (s *nameSet) match(name []byte) bool {
	if s.all {
		return true
	}
	if _, ok := s.exact[string(name)]; ok {
		return true
	}
	if len(s.suffix) == 0 {
		return false
	}
	for i, c := range name {
		if c == '.' {
			if _, ok := s.suffix[string(name[i+1:])]; ok {
				return true
			}
		}
	}
	return false
}

// CheckNamePattern reports whether p is a valid DNS name, server name or
// host pattern: "example.com", "*.example.com" or "*".
func CheckNamePattern(p string) error {
	_, _, err := normalizeName(p)
	return err
}
