package rules

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Capabilities is what Probe found out about the kernel.
type Capabilities struct {
	// NativeQueue: the nftables queue expression (CONFIG_NFT_QUEUE).
	NativeQueue bool
	// CompatQueue: the xtables NFQUEUE target, revision 3, through
	// nft_compat in an inet table.
	CompatQueue bool
	// NativeErr and CompatErr say why a path is missing ("" when present).
	NativeErr, CompatErr string
	// Log and Limit: the nftables log expression (to an nflog group) and
	// the limit expression, for the rule option log in mode KernelFirst;
	// LogErr and LimitErr say why one is missing. Without both, rules
	// with the option are decided in user space.
	Log, Limit       bool
	LogErr, LimitErr string
	// Meter: dynamic sets whose elements carry a limit, keyed by ct id, and verdict maps, for rate_limit in mode KernelFirst
	// (compile_ratelimit.go); MeterErr says why not.
	Meter    bool
	MeterErr string
	// Kernel is the running kernel's release.
	Kernel string
}

// Best is the implementation QueueAuto picks: native when present.
func (c Capabilities) Best() (QueueImpl, error) {
	switch {
	case c.NativeQueue:
		return QueueNative, nil
	case c.CompatQueue:
		return QueueCompat, nil
	}
	return QueueAuto, fmt.Errorf("pick queue expression: %w (native: %s; compat: %s)", ErrNoQueueSupport, c.NativeErr, c.CompatErr)
}

// String is a one-line summary for logs and `qguard rules show`.
func (c Capabilities) String() string {
	state := func(ok bool, why string) string {
		if ok {
			return "yes"
		}
		return "no (" + why + ")"
	}
	best, err := c.Best()
	chosen := best.String()
	if err != nil {
		chosen = "none"
	}
	return fmt.Sprintf("kernel %s: nft queue expression: %s; xt NFQUEUE via compat: %s; using %s; nft log: %s; nft limit: %s; nft meters: %s",
		c.Kernel, state(c.NativeQueue, c.NativeErr), state(c.CompatQueue, c.CompatErr), chosen,
		state(c.Log, c.LogErr), state(c.Limit, c.LimitErr), state(c.Meter, c.MeterErr))
}

// Probe tests, in the caller's network namespace, which queue expressions
// the kernel accepts. See ProbeNS.
func Probe() (Capabilities, error) { return ProbeNS(0) }

// ProbeNS tests the queue expressions in the network namespace open as
// netnsFd (0: the caller's). Each test is one transaction that creates a
// throwaway inet table with a regular chain and a queue rule, and deletes
// it again: the kernel checks the expression when it parses the rule, so a
// missing one fails the whole batch and a present one leaves nothing behind
// (the table is gone when the batch commits). No packet ever sees the rule:
// the chain is not attached to a hook.
func ProbeNS(netnsFd int) (Capabilities, error) {
	return probe(dialer(netnsFd))
}

var probeSeq atomic.Uint32

func probe(dial func() (*nftables.Conn, error)) (Capabilities, error) {
	caps := Capabilities{Kernel: kernelRelease()}
	var err error
	caps.NativeQueue, caps.NativeErr, err = probeExpr(dial, queueExpr(QueueNative, 0, 1, true, false))
	if err != nil {
		return caps, err
	}
	caps.CompatQueue, caps.CompatErr, err = probeExpr(dial, queueExpr(QueueCompat, 0, 1, true, false))
	if err != nil {
		return caps, err
	}
	caps.Log, caps.LogErr, err = probeExpr(dial, &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX,
		Group: DefaultLogGroup, Data: []byte("qguard probe")})
	if err != nil {
		return caps, err
	}
	caps.Limit, caps.LimitErr, err = probeExpr(dial, &expr.Limit{Type: expr.LimitTypePkts, Rate: 10, Unit: expr.LimitTimeSecond, Burst: 10})
	if err != nil {
		return caps, err
	}
	caps.Meter, caps.MeterErr, err = probeMeter(dial)
	return caps, err
}

// probeMeter tries what a kernel rate limit uses: a dynamic set keyed by
// connection with a limit per element, updated from a rule.
func probeMeter(dial func() (*nftables.Conn, error)) (bool, string, error) {
	return probeTable(dial, func(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) error {
		s := &nftables.Set{Table: t, Name: "m", KeyType: rateFlowType,
			Dynamic: true, HasTimeout: true, Timeout: time.Second, Size: 16}
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(rateFlowLoad(), &expr.Dynset{SrcRegKey: tupleReg,
			SetName: "m", Operation: unix.NFT_DYNSET_OP_UPDATE,
			Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1, Unit: expr.LimitTimeSecond, Burst: 1}}})})
		return nil
	})
}

// probeExpr reports whether the kernel accepts e; err is set only when the
// probe itself could not run (e.g. no permission).
func probeExpr(dial func() (*nftables.Conn, error), e expr.Any) (ok bool, why string, err error) {
	return probeTable(dial, func(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) error {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{e}})
		return nil
	})
}

// probeTable runs add in a throwaway table's transaction (see ProbeNS).
func probeTable(dial func() (*nftables.Conn, error), add func(*nftables.Conn, *nftables.Table, *nftables.Chain) error) (ok bool, why string, err error) {
	c, err := dial()
	if err != nil {
		return false, "", fmt.Errorf("probe expression: %w", err)
	}
	t := c.AddTable(inetTable(fmt.Sprintf("qguard-probe-%d-%d", os.Getpid(), probeSeq.Add(1))))
	ch := c.AddChain(&nftables.Chain{Name: "probe", Table: t})
	if err := add(c, t, ch); err != nil {
		return false, "", fmt.Errorf("probe expression: %w", err)
	}
	c.DelTable(t)
	err = c.Flush()
	switch {
	case err == nil:
		return true, "", nil
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return false, "", fmt.Errorf("probe expression: %w", err)
	case errors.Is(err, unix.ENOENT):
		return false, "not in this kernel (ENOENT)", nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.EINVAL):
		return false, "rejected by the kernel: " + unwrapErrno(err), nil
	}
	return false, "", fmt.Errorf("probe expression: %w", err)
}

func unwrapErrno(err error) string {
	var no unix.Errno
	if errors.As(err, &no) {
		return no.Error()
	}
	return err.Error()
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return strings.TrimRight(string(u.Release[:]), "\x00")
}

// dialer returns a function opening an nftables connection in the
// namespace netnsFd (0: the caller's).
func dialer(netnsFd int) func() (*nftables.Conn, error) {
	return func() (*nftables.Conn, error) {
		opts := []nftables.ConnOption{nftables.WithSockOptions(batchBuffers)}
		if netnsFd != 0 {
			opts = append(opts, nftables.WithNetNSFd(netnsFd))
		}
		return nftables.New(opts...)
	}
}

// batchBufferSize holds a large batch and its acknowledgements: the
// batch goes out in one sendmsg, which the send buffer bounds (EMSGSIZE
// past it), and Flush reads one ack per message only after the kernel has
// committed them all, which the receive buffer must hold (ENOBUFS, the
// batch's outcome lost, past it). A kernel-first policy of 100 rules is a
// few thousand messages: the default 208 KiB buffers failed the daemon's
// start with the benchmark's 100-rule policy, and 300 rules could not be
// sent at all.
const batchBufferSize = 32 << 20

// batchBuffers forces the connection's buffers to batchBufferSize
// (SO_SNDBUFFORCE, SO_RCVBUFFORCE: CAP_NET_ADMIN allows them past
// wmem_max/rmem_max), or as large as the limits let them be.
func batchBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var rerr, werr error
	if err := rc.Control(func(fd uintptr) {
		rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, batchBufferSize)
		werr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, batchBufferSize)
	}); err != nil {
		return err
	}
	if rerr != nil {
		_ = c.SetReadBuffer(batchBufferSize)
	}
	if werr != nil {
		_ = c.SetWriteBuffer(batchBufferSize)
	}
	return nil
}
