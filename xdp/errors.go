package xdp

import (
	"errors"
	"fmt"
	"syscall"
)

// sentinel is an error value that also matches a broader sentinel with
// errors.Is, so that callers who only care whether XDP is usable can test
// for ErrUnsupported alone.
type sentinel struct {
	msg    string
	parent error
}

func (e *sentinel) Error() string { return e.msg }

func (e *sentinel) Is(target error) bool { return e.parent != nil && target == e.parent }

var (
	// ErrUnsupported means XDP cannot be used here: the kernel lacks the
	// program type or bpf_link for XDP, the program does not load, or one of
	// the more specific reasons below. The caller should fall back to the
	// nftables address sets. ErrPermission and ErrNoInterface match it too.
	ErrUnsupported = errors.New("xdp not usable")

	// ErrPermission means the kernel refused a bpf(2) or attach call
	// (EPERM/EACCES): qguard needs root, or CAP_BPF plus CAP_NET_ADMIN.
	ErrPermission error = &sentinel{"permission denied (need CAP_BPF and CAP_NET_ADMIN)", ErrUnsupported}

	// ErrNoInterface means an interface named in the configuration does not
	// exist in the caller's network namespace.
	ErrNoInterface error = &sentinel{"no such interface", ErrUnsupported}

	// ErrBusy means the interface already has an XDP program attached by
	// someone else (EBUSY/EEXIST); qguard does not replace it.
	ErrBusy error = &sentinel{"interface already has an XDP program", ErrUnsupported}

	// ErrInvalid reports bad input: a configuration value, an address, a
	// port or a TTL. It does not match ErrUnsupported: it is a caller bug or
	// a configuration mistake, not a missing kernel feature.
	ErrInvalid = errors.New("invalid argument")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("xdp filter closed")
)

// classify wraps a kernel error from op with the sentinel that explains it.
func classify(op string, err error) error {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("xdp: %s: %w: %w", op, ErrPermission, err)
	case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("xdp: %s: %w: %w", op, ErrBusy, err)
	default:
		return fmt.Errorf("xdp: %s: %w: %w", op, ErrUnsupported, err)
	}
}
