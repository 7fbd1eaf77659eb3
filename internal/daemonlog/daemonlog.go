package daemonlog

import (
	"errors"
	"io"
	"log/slog"

	"github.com/qguard/qguard/internal/enumtext"
)

// ErrInvalid is wrapped by the errors of UnmarshalText.
var ErrInvalid = errors.New("invalid log setting")

// Format is how log records are written. The zero value has no name;
// New writes text for it.
type Format uint8

// Formats.
const (
	Text Format = iota + 1
	JSON
)

var formatNames = [...]string{"", "text", "json"}

// FormatNames returns the formats' names, for messages and completions.
func FormatNames() []string { return formatNames[1:] }

func (f Format) String() string { return name(formatNames[:], int(f)) }

// MarshalText returns String's name.
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText parses "text" or "json".
func (f *Format) UnmarshalText(b []byte) error {
	return enumtext.Set(f, b, "log format", ErrInvalid, formatNames[:]...)
}

// Level is the least severe record written. The zero value has no name;
// New takes it as Info.
type Level uint8

// Levels, most verbose first.
const (
	Debug Level = iota + 1
	Info
	Warn
	Error
)

var levelNames = [...]string{"", "debug", "info", "warn", "error"}

var slogLevels = [...]slog.Level{slog.LevelInfo, slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}

// LevelNames returns the levels' names, most verbose first.
func LevelNames() []string { return levelNames[1:] }

func (l Level) String() string { return name(levelNames[:], int(l)) }

// MarshalText returns String's name.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses "debug", "info", "warn" or "error".
func (l *Level) UnmarshalText(b []byte) error {
	return enumtext.Set(l, b, "log level", ErrInvalid, levelNames[:]...)
}

// Slog returns the level as slog's.
func (l Level) Slog() slog.Level {
	if int(l) < len(slogLevels) {
		return slogLevels[l]
	}
	return slog.LevelInfo
}

func name(names []string, i int) string {
	switch {
	case i == 0:
		return "unset"
	case i < len(names):
		return names[i]
	}
	return "invalid"
}

// New returns a logger writing records of level l and above to w in
// format f.
func New(w io.Writer, f Format, l Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: l.Slog()}
	if f == JSON {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
