package rules

import "errors"

var (
	// ErrInvalidConfig is wrapped by every configuration error.
	ErrInvalidConfig = errors.New("invalid rules configuration")
	// ErrNoQueueSupport means the kernel has neither the nftables queue
	// expression nor the xtables NFQUEUE target.
	ErrNoQueueSupport = errors.New("kernel supports neither nft queue nor xt NFQUEUE")
	// ErrNotInstalled is returned by operations that need the table after
	// Remove or before Apply.
	ErrNotInstalled = errors.New("rules not installed")
)

// FieldError is a Config field Validate refuses, named the way the
// configuration file's rules section names it ("marks.reject", "hooks"),
// so that the file can point at the key. Error is the underlying error's.
type FieldError struct {
	Field string
	Err   error // wraps ErrInvalidConfig
}

func (e *FieldError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// fieldErr is a *FieldError of field, unless err is nil.
func fieldErr(field string, err error) error {
	if err == nil {
		return nil
	}
	return &FieldError{Field: field, Err: err}
}
