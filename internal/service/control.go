package service

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/qguard/qguard/config"
	"github.com/qguard/qguard/internal/engine"
)

// DefaultControlSocket is where `qguard run` listens for `reload` and
// `status` unless the configuration says otherwise.
const DefaultControlSocket = "/run/qguard/control.sock"

// ErrControl reports a failure talking to a running daemon's control socket.
var ErrControl = errors.New("control socket")

// Request is one line sent to the control socket. Cmd is "reload" or
// "status"; a bare word line ("status\n") is accepted too.
type Request struct {
	Cmd string `json:"cmd"`
}

// Response is the single JSON line the daemon answers with.
type Response struct {
	OK      bool          `json:"ok"`
	Error   string        `json:"error,omitempty"`
	Message string        `json:"message,omitempty"`
	Status  *engine.Stats `json:"status,omitempty"`
}

// ControlHandler is what the control socket serves; the daemon implements
// Reload by loading its configuration file again.
type ControlHandler interface {
	Reload() error
	Stats() engine.Stats
}

// ListenControl creates the directory of path (mode 0750), removes a stale
// socket left by a crashed daemon (refusing if a live one answers), and
// listens with mode 0600: only the daemon's user (and root) may reload or
// read counters. Anything at path that is not a socket (a file a mistyped
// --control names, a directory, a symbolic link) is refused, never removed.
func ListenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create control socket directory: %w%s", err, createHint(err))
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w%s", path, err, createHint(err))
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict control socket %s: %w", path, err)
	}
	return ln, nil
}

// clearStale makes room at path for a new socket: nothing there is fine, a
// socket nobody answers on is removed, anything else is an error.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket %s: %w: the path exists and is not a socket (%s); qguard replaces only a stale socket: choose another --control path (or control.socket) or remove it",
			path, ErrControl, config.FileKind(fi.Mode()))
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("listen on control socket %s: %w: another qguard is running", path, ErrControl)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale control socket %s: %w", path, err)
	}
	return nil
}

// createHint says what to do when the daemon's user may not create its
// socket (an unprivileged service without its runtime directory).
func createHint(err error) string {
	if !errors.Is(err, os.ErrPermission) {
		return ""
	}
	return " (the daemon's user must be able to create the socket: give --control or control.socket a directory it owns; the systemd unit's RuntimeDirectory=qguard makes " +
		filepath.Dir(DefaultControlSocket) + ")"
}

// ServeControl answers requests on ln until ctx is done, then closes ln
// (which removes the socket file). Each connection may send several lines.
func ServeControl(ctx context.Context, ln net.Listener, h ControlHandler, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Warn("control socket accept failed", "err", err)
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, c, h, log)
		}()
	}
	wg.Wait()
}

func serveConn(ctx context.Context, c net.Conn, h ControlHandler, log *slog.Logger) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), 4096)
	enc := json.NewEncoder(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if !sc.Scan() {
			return
		}
		cmd, err := parseRequest(sc.Bytes())
		var resp Response
		if err != nil {
			resp = Response{Error: err.Error()}
		} else {
			resp = dispatch(cmd, h, log)
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := enc.Encode(&resp); err != nil {
			return
		}
	}
}

func parseRequest(line []byte) (string, error) {
	s := strings.TrimSpace(string(line))
	if strings.HasPrefix(s, "{") {
		var r Request
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return "", fmt.Errorf("parse request: %v", err)
		}
		s = r.Cmd
	}
	switch s {
	case "reload", "status":
		return s, nil
	}
	return "", fmt.Errorf("unknown command %q (want reload or status)", s)
}

func dispatch(cmd string, h ControlHandler, log *slog.Logger) Response {
	switch cmd {
	case "reload":
		log.Info("reload requested over the control socket")
		if err := h.Reload(); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Message: "reloaded"}
	default:
		st := h.Stats()
		return Response{OK: true, Status: &st}
	}
}

// Call sends cmd to the daemon listening on path and returns its answer.
// A daemon that answers OK=false is not a transport error: the caller
// decides what to print.
func Call(path, cmd string, timeout time.Duration) (*Response, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, dialError(path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(Request{Cmd: cmd}); err != nil {
		return nil, fmt.Errorf("send %s to %s: %w: %w", cmd, path, ErrControl, err)
	}
	var r Response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&r); err != nil {
		return nil, fmt.Errorf("read answer from %s: %w: %w", path, ErrControl, err)
	}
	return &r, nil
}
