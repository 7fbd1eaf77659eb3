package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxFileSize bounds the configuration files (and prefix set files) read.
const MaxFileSize = 64 << 20

// Errors of ReadFile.
var (
	// ErrNotRegular: the path names a FIFO, a device, a directory or a
	// socket, which could be read forever or block the reader.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file holds more than MaxFileSize bytes.
	ErrTooLarge = errors.New("file too large")
)

// ReadFile reads the regular file at path, at most MaxFileSize bytes. It is
// how qguard reads every file a configuration names (the file itself,
// prefix sets, rule tests), so a FIFO, a device, a directory or a socket
// is refused at once instead of hanging check, run or a reload. The file
// is stat'ed (opening a device may do something), then opened non-blocking
// (a FIFO without a writer would block the open) and without becoming a
// controlling terminal, and stat'ed again through the descriptor in case
// the path was swapped in between.
func ReadFile(path string) ([]byte, error) {
	// Opening a device can have effects of its own: look first. A failed
	// stat is left for the open to report.
	if fi, err := os.Stat(path); err == nil {
		if err := regular(path, fi); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: %w: more than the %d bytes allowed", path, ErrTooLarge, MaxFileSize)
	}
	return b, nil
}

func regular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%s: %w (it is %s); give the path of a regular file", path, ErrNotRegular, FileKind(fi.Mode()))
}

// FileKind names the kind of file m describes, for messages: "a regular
// file", "a directory", "a symbolic link", "a FIFO", "a socket", "a
// character device" or "a block device".
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a plain file: " + m.Type().String()
}
