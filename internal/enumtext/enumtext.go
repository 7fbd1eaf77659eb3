package enumtext

import (
	"fmt"
	"strings"
)

// Parse returns the index of text among names. Empty names are values
// without a text form (an enum's invalid zero value, say) and never match.
// Otherwise the error, an *Error, names kind, text and the accepted names
// and matches sentinel with errors.Is.
func Parse(text []byte, kind string, sentinel error, names ...string) (int, error) {
	for i, n := range names {
		if n != "" && n == string(text) {
			return i, nil
		}
	}
	return 0, &Error{Kind: kind, Value: string(text), Names: accepted(names), Sentinel: sentinel}
}

func accepted(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Set parses text as Parse does and stores the index in *dst: the body of
// an enum's UnmarshalText.
func Set[T ~uint8](dst *T, text []byte, kind string, sentinel error, names ...string) error {
	i, err := Parse(text, kind, sentinel, names...)
	if err == nil {
		*dst = T(i)
	}
	return err
}

// Error is a text that names none of an enum's values.
type Error struct {
	Kind     string   // what was asked for: "verdict mode"
	Value    string   // the text given
	Names    []string // the accepted texts, in their documented order
	Sentinel error    // the owner's sentinel, for errors.Is
}

func (e *Error) Error() string {
	return fmt.Sprintf("unknown %s %q; expected one of: %s", e.Kind, e.Value, strings.Join(e.Names, ", "))
}

// Unwrap returns the owner's sentinel.
func (e *Error) Unwrap() error { return e.Sentinel }
