package queue

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qguard/qguard/internal/sockbuf"
)

// sock is one queue's netlink socket during set-up and tear-down; the hot
// path (loop_linux.go) uses its fd directly.
type sock struct {
	fd     int
	portid uint32
	queue  uint16
	seq    uint32
	// stash holds packet datagrams that arrived while waiting for an ACK;
	// the loop verdicts them first.
	stash [][]byte
	rbuf  []byte
}

// openSocket creates the socket for queue num in the calling thread's
// network namespace and binds the queue.
func openSocket(c *Config, num uint16) (s *sock, err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket for queue %d: %w", num, mapErrno(err, num))
	}
	s = &sock{fd: fd, queue: num, rbuf: make([]byte, recvSlotSize(c))}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("bind netlink socket for queue %d: %w", num, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("read netlink port id for queue %d: %w", num, err)
	}
	if nl, ok := sa.(*unix.SockaddrNetlink); ok {
		s.portid = nl.Pid
	}
	sockbuf.SetRecv(fd, c.RcvBuf)
	sockbuf.SetSend(fd, sendBufSize)
	if c.NoENOBUFS {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1); err != nil {
			return nil, fmt.Errorf("set NETLINK_NO_ENOBUFS on queue %d: %w", num, err)
		}
	}
	if err := s.request(bindMsg(num, s.nextSeq(), c)); err != nil {
		return nil, fmt.Errorf("bind queue %d: %w", num, mapBindErr(err, num, s.portid))
	}
	return s, nil
}

func (s *sock) nextSeq() uint32 {
	s.seq++
	return s.seq
}

// request sends a control message and waits for its acknowledgement.
// Packet messages that arrive meanwhile are stashed for the loop.
func (s *sock) request(msg []byte) error {
	seq := ne.Uint32(msg[8:12])
	// Unaddressed, a netlink message goes to the kernel (port id 0).
	if _, err := unix.Write(s.fd, msg); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	for {
		n, _, err := unix.Recvfrom(s.fd, s.rbuf, 0)
		if err == unix.EINTR || err == unix.ENOBUFS {
			continue
		}
		if err == unix.EAGAIN {
			return fmt.Errorf("no acknowledgement from the kernel in 5s: %w", os.ErrDeadlineExceeded)
		}
		if err != nil {
			return err
		}
		b := s.rbuf[:n]
		stashed := false
		for rest := b; ; {
			typ, body, r, _, ok := nextMsg(rest)
			if !ok {
				break
			}
			rest = r
			switch typ {
			case nlmsgError:
				errno, aseq, ok := nlError(body)
				if !ok || aseq != seq {
					continue
				}
				if errno != 0 {
					return unix.Errno(-errno)
				}
				return nil
			case msgPacket:
				if !stashed {
					s.stash = append(s.stash, append([]byte(nil), b...))
					stashed = true
				}
			}
		}
	}
}

// unbind unbinds the queue; the kernel drops what is still queued.
func (s *sock) unbind() error {
	if err := s.request(unbindMsg(s.queue, s.nextSeq())); err != nil {
		return fmt.Errorf("unbind queue %d: %w", s.queue, err)
	}
	return nil
}

func (s *sock) close() error { return unix.Close(s.fd) }

func mapErrno(err error, num uint16) error {
	switch {
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w (queue %d): %w", ErrNoNFQueue, num, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (queue %d): %w", ErrPermission, num, err)
	}
	return err
}

// mapBindErr names why a bind failed. The kernel answers EPERM both when
// the caller lacks CAP_NET_ADMIN and when another socket holds the queue
// (nfqnl_recv_config compares the port ids), and EBUSY when this socket
// binds twice; the /proc table tells the first two apart.
func mapBindErr(err error, num uint16, ours uint32) error {
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%w: queue %d: %w", ErrQueueBusy, num, err)
	}
	if errors.Is(err, unix.EPERM) {
		if ks, ok := readProcQueue(num); ok && ks.PortID != ours {
			return fmt.Errorf("%w: netlink port id %d holds queue %d (see /proc/net/netfilter/nfnetlink_queue): %w",
				ErrQueueBusy, ks.PortID, num, err)
		}
		return fmt.Errorf("%w (queue %d): %w", ErrPermission, num, err)
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w (queue %d; FlagConntrack needs CONFIG_NETFILTER_NETLINK_GLUE_CT, FlagSecCtx CONFIG_NETWORK_SECMARK): %w",
			ErrFlagUnsupported, num, err)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPROTONOSUPPORT) {
		if _, serr := os.Stat(procQueuePath); serr != nil {
			return fmt.Errorf("%w (queue %d, no %s): %w", ErrNoNFQueue, num, procQueuePath, err)
		}
	}
	return err
}

// procQueuePath is read through thread-self so that it shows the calling
// thread's network namespace, not the main thread's.
const procQueuePath = "/proc/thread-self/net/netfilter/nfnetlink_queue"

func readProcQueue(num uint16) (KernelStats, bool) {
	b, err := os.ReadFile(procQueuePath)
	if err != nil {
		return KernelStats{}, false
	}
	all, _ := ParseProcQueues(b)
	for _, k := range all {
		if k.Queue == num {
			return k, true
		}
	}
	return KernelStats{}, false
}
