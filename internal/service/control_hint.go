package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// dialError says why the control socket at path could not be reached and
// what to do: nothing there, a dead daemon's socket, or one this user may
// not use.
func dialError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("connect to %s: %w: %w: %s", path, ErrControl, err, permissionHint(path))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connect to %s: %w: %w (the socket is there but no qguard answers: the daemon that made it is gone; the next qguard run replaces it)", path, ErrControl, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("connect to %s: %w: %w (is qguard running in this network namespace? A daemon with control.socket or --control set listens there: pass the same --control, or --config with its file)", path, ErrControl, err)
	}
	return fmt.Errorf("connect to %s: %w: %w (is qguard running?)", path, ErrControl, err)
}

// permissionHint tells a socket this user may not open from a directory
// it may not enter, naming the owner and mode that keep it out.
func permissionHint(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		dir := filepath.Dir(path)
		if dst, derr := os.Stat(dir); derr == nil {
			return fmt.Sprintf("this user may not enter %s (owner %s, mode %04o), where a running qguard keeps its socket: run it as root (sudo) or as the service user",
				dir, owner(dst), dst.Mode().Perm())
		}
		return "this user may not reach the socket: run it as root (sudo)"
	}
	return fmt.Sprintf("the socket exists, but its owner %s and mode %04o let only that user and root connect: run it as root (sudo) or as the service user",
		owner(st), st.Mode().Perm())
}

func owner(fi fs.FileInfo) string {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "unknown"
	}
	id := strconv.FormatUint(uint64(sys.Uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return "uid " + id
}
