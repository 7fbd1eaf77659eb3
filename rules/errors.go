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
