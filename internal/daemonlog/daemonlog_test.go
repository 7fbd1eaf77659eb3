package daemonlog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, n := range LevelNames() {
		var l Level
		if err := l.UnmarshalText([]byte(n)); err != nil || l.String() != n {
			t.Errorf("level %q: %v, %v", n, l, err)
		}
	}
	for _, n := range FormatNames() {
		var f Format
		if err := f.UnmarshalText([]byte(n)); err != nil || f.String() != n {
			t.Errorf("format %q: %v, %v", n, f, err)
		}
	}
	var l Level
	err := l.UnmarshalText([]byte("DEBUG"))
	if want := `unknown log level "DEBUG"; expected one of: debug, info, warn, error`; err == nil || err.Error() != want || !errors.Is(err, ErrInvalid) {
		t.Errorf("DEBUG: %v, want %q", err, want)
	}
	var f Format
	if err := f.UnmarshalText([]byte("xml")); err == nil || err.Error() != `unknown log format "xml"; expected one of: text, json` {
		t.Errorf("xml: %v", err)
	}
	if Debug.Slog() != slog.LevelDebug || Error.Slog() != slog.LevelError || Level(0).Slog() != slog.LevelInfo {
		t.Error("slog levels")
	}
}

func TestNew(t *testing.T) {
	var b bytes.Buffer
	lg := New(&b, JSON, Warn)
	lg.Info("hidden")
	lg.Warn("shown", "k", 1)
	if s := b.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"msg":"shown"`) {
		t.Errorf("json logger output %q", s)
	}
}
