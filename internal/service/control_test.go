package service

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qguard/qguard/internal/engine"
)

type fakeCtl struct{ reloadErr error }

func (f *fakeCtl) Reload() error       { return f.reloadErr }
func (f *fakeCtl) Stats() engine.Stats { return engine.Stats{Version: "test", Reloads: 7} }

func serve(t *testing.T, h ControlHandler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "control.sock")
	ln, err := ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ServeControl(ctx, ln, h, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestControl(t *testing.T) {
	f := &fakeCtl{}
	path := serve(t, f)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	r, err := Call(path, "status", time.Second)
	if err != nil || !r.OK || r.Status == nil || r.Status.Reloads != 7 {
		t.Fatalf("status: %+v %v", r, err)
	}
	r, err = Call(path, "reload", time.Second)
	if err != nil || !r.OK {
		t.Fatalf("reload: %+v %v", r, err)
	}
	f.reloadErr = errors.New("config.yaml:3:5: bad port")
	r, err = Call(path, "reload", time.Second)
	if err != nil || r.OK || !strings.Contains(r.Error, "bad port") {
		t.Fatalf("failed reload: %+v %v", r, err)
	}
	r, err = Call(path, "explode", time.Second)
	if err != nil || r.OK || !strings.Contains(r.Error, "unknown command") {
		t.Fatalf("unknown command: %+v %v", r, err)
	}
	// Bare words and several requests on one connection.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("status\n{\"cmd\":\"status\"}\n{bad json\n"))
	sc := bufio.NewScanner(c)
	for i, want := range []string{`"ok":true`, `"ok":true`, `parse request`} {
		if !sc.Scan() || !strings.Contains(sc.Text(), want) {
			t.Fatalf("line %d: %q, want %q", i, sc.Text(), want)
		}
	}
	// A second daemon must not steal a live socket.
	if _, err := ListenControl(path); err == nil || !errors.Is(err, ErrControl) {
		t.Fatalf("second listener: %v", err)
	}
}

func TestControlStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	// A socket file nobody listens on, as a SIGKILLed daemon leaves.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := ListenControl(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	if _, err := Call(path, "status", 100*time.Millisecond); !errors.Is(err, ErrControl) {
		t.Fatalf("call without daemon: %v", err)
	}
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	pc.SetReadDeadline(time.Now().Add(time.Second))
	n, err := pc.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q %v", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify("READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
}

// Whatever is at the control path and is not a socket (a file a mistyped
// --control names, a directory, a symbolic link) is refused and kept; a
// live socket means another daemon.
func TestControlRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "important.conf")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{file: "a regular file", sub: "a directory", link: "a symbolic link"} {
		ln, err := ListenControl(path)
		if err == nil {
			ln.Close()
			t.Errorf("%s: listening replaced %s", path, kind)
			continue
		}
		if !errors.Is(err, ErrControl) || !strings.Contains(err.Error(), "is not a socket ("+kind+")") {
			t.Errorf("%s: %v, want a refusal naming %s", path, err, kind)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file named as control socket was changed: %q %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was changed: %v", err)
	}

	live := filepath.Join(dir, "live.sock")
	ln, err := ListenControl(live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if ln2, err := ListenControl(live); err == nil {
		ln2.Close()
		t.Fatal("a second listener replaced a live socket")
	} else if !strings.Contains(err.Error(), "another qguard is running") {
		t.Errorf("live socket: %v", err)
	}
}
