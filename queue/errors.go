package queue

import "errors"

// Errors returned by Open, Run and Close; wrapped with the queue number, test
// them with errors.Is.
var (
	// ErrQueueBusy: another netlink socket (usually another process) has
	// bound the queue.
	ErrQueueBusy = errors.New("queue already bound by another netlink socket")
	// ErrNoNFQueue: the kernel lacks nfnetlink or nfnetlink_queue.
	ErrNoNFQueue = errors.New("nfnetlink_queue not available")
	// ErrPermission: binding needs CAP_NET_ADMIN.
	ErrPermission = errors.New("permission denied: need CAP_NET_ADMIN")
	// ErrClosed: the queues were closed.
	ErrClosed = errors.New("queue closed")
	// ErrRunning: Run was called while already running.
	ErrRunning = errors.New("queue already running")
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("invalid queue config")
	// ErrFlagUnsupported: the kernel refused a queue flag (EOPNOTSUPP):
	// FlagConntrack needs CONFIG_NETFILTER_NETLINK_GLUE_CT, FlagSecCtx
	// CONFIG_NETWORK_SECMARK.
	ErrFlagUnsupported = errors.New("queue flag not supported by this kernel")
	// ErrUnsupported: the platform has no nfnetlink_queue.
	ErrUnsupported = errors.New("nfnetlink_queue needs Linux")
)
