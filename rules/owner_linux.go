package rules

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTableOwned means another live process holds the claim on a table (see
// ClaimTable); the error text names it.
var ErrTableOwned = errors.New("table is owned by another qguard")

// Holder describes the process that holds a table's claim.
type Holder struct {
	PID int `json:"pid"`
	// Queues is what the holder serves, e.g. "0-3"; Table its table.
	Queues string `json:"queues,omitempty"`
	Table  string `json:"table"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Queues != "" {
		s += ", queues " + h.Queues
	}
	return s
}

// Claim is one process's ownership of a table name in one network
// namespace: a listening abstract unix socket named ClaimName(table).
// Abstract names are per network namespace and vanish with the last file
// descriptor, so a holder killed by SIGKILL frees its tables at once and no
// stale file is ever left to clean up.
type Claim struct {
	ln   *net.UnixListener
	info []byte
	wg   sync.WaitGroup
	once sync.Once
}

// ClaimName is the abstract socket name (without the leading NUL) that
// stands for table's owner.
func ClaimName(table string) string { return "qguard/table/" + table }

// ClaimTable claims table in the network namespace open as netnsFd (0: the
// caller's) for this process, which serves queues. When a live process
// holds the claim already, the error wraps ErrTableOwned and names it.
func ClaimTable(netnsFd int, table, queues string) (*Claim, error) {
	if table == "" {
		table = "qguard"
	}
	info, _ := json.Marshal(Holder{PID: os.Getpid(), Queues: queues, Table: table})
	for try := 0; ; try++ {
		var ln *net.UnixListener
		err := inNetNS(netnsFd, func() (err error) {
			ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: "@" + ClaimName(table), Net: "unix"})
			return err
		})
		if err == nil {
			c := &Claim{ln: ln, info: append(info, '\n')}
			c.wg.Add(1)
			go c.serve()
			return c, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("claim table %s: %w", table, err)
		}
		h, herr := TableHolder(netnsFd, table)
		switch {
		case herr != nil:
			return nil, fmt.Errorf("claim table %s: %w (holder unknown: %v)", table, ErrTableOwned, herr)
		case h != nil:
			return nil, fmt.Errorf("claim table %s: %w: %s; stop it or use another rules.table", table, ErrTableOwned, h)
		case try > 0:
			return nil, fmt.Errorf("claim table %s: %w", table, err)
		}
		// The holder went away between bind and connect: try once more.
	}
}

// serve answers every connection with one JSON line describing the holder.
func (c *Claim) serve() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = conn.Write(c.info)
		conn.Close()
	}
}

// Release gives the claim up. It is idempotent.
func (c *Claim) Release() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		c.ln.Close()
		c.wg.Wait()
	})
}

// TableHolder says who holds table's claim in the namespace netnsFd (0: the
// caller's): nil, nil when nobody does. The pid comes from the kernel
// (SO_PEERCRED), not from what the holder writes.
func TableHolder(netnsFd int, table string) (*Holder, error) {
	if table == "" {
		table = "qguard"
	}
	var conn *net.UnixConn
	err := inNetNS(netnsFd, func() (err error) {
		conn, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: "@" + ClaimName(table), Net: "unix"})
		return err
	})
	if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ask holder of table %s: %w", table, err)
	}
	defer conn.Close()
	h := &Holder{Table: table}
	raw, err := conn.SyscallConn()
	if err == nil {
		var cred *unix.Ucred
		_ = raw.Control(func(fd uintptr) {
			cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		})
		if err == nil {
			h.PID = int(cred.Pid)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	var said Holder
	if json.Unmarshal([]byte(strings.TrimSpace(line)), &said) == nil {
		h.Queues = said.Queues
		if h.PID == 0 {
			h.PID = said.PID
		}
	}
	return h, nil
}

// inNetNS runs f on a locked thread switched to the namespace netnsFd (0:
// run f here). Sockets keep the namespace they were created in.
func inNetNS(netnsFd int, f func() error) error {
	if netnsFd == 0 {
		return f()
	}
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(netnsFd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with its goroutine rather than
		// run other code in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("return to own network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}
