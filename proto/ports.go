package proto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors returned by ParsePortRange, wrapped with the text that failed.
var (
	ErrNotPort       = errors.New("not a port number 0-65535")
	ErrPortsBackward = errors.New("port range runs backwards")
)

// PortRange is an inclusive range of ports; a single port has Lo == Hi.
type PortRange struct{ Lo, Hi uint16 }

// String formats r as "80" or "8000-8100", the form ParsePortRange reads.
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Contains reports whether port is in r.
func (r PortRange) Contains(port uint16) bool { return r.Lo <= port && port <= r.Hi }

// ParsePortRange parses "53" or "8000-8100" (spaces around the numbers are
// allowed). The error wraps ErrNotPort or ErrPortsBackward.
func ParsePortRange(s string) (PortRange, error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	lo, err := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	hi := lo
	if err == nil && isRange {
		hi, err = strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	}
	switch {
	case err != nil:
		return PortRange{}, fmt.Errorf("parse port range %q: %w", s, ErrNotPort)
	case hi < lo:
		return PortRange{}, fmt.Errorf("parse port range %q: %w", s, ErrPortsBackward)
	}
	return PortRange{Lo: uint16(lo), Hi: uint16(hi)}, nil
}
