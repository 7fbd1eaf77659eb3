package xdp

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/qguard/qguard/internal/enumtext"
	"github.com/qguard/qguard/proto"
)

// Mode selects how the program is attached to an interface.
type Mode uint8

const (
	// ModeUnset is the zero value; Config treats it as ModeAuto.
	ModeUnset Mode = iota
	// ModeAuto tries native (driver) mode and falls back to generic mode.
	ModeAuto
	// ModeNative attaches in the driver's receive path (XDP_FLAGS_DRV_MODE)
	// or fails.
	ModeNative
	// ModeGeneric attaches after the stack has built an skb
	// (XDP_FLAGS_SKB_MODE): works on every interface, costs more per packet.
	ModeGeneric
)

// modeNames are the modes' text forms (the configuration file's
// xdp.mode); ModeUnset has none.
var modeNames = [...]string{"", "auto", "native", "generic"}

// String returns the name used in the configuration file.
func (m Mode) String() string {
	switch {
	case m == ModeUnset:
		return "unset"
	case int(m) < len(modeNames):
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// MarshalText returns String's name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses "auto", "native" or "generic", as written in the
// configuration file's xdp.mode.
func (m *Mode) UnmarshalText(b []byte) error {
	return enumtext.Set(m, b, "xdp mode", ErrInvalid, modeNames[:]...)
}

// ParseMode is UnmarshalText of a string.
func ParseMode(s string) (Mode, error) {
	var m Mode
	err := m.UnmarshalText([]byte(s))
	return m, err
}

// Defaults and bounds for the block maps.
const (
	DefaultMaxSources = 65536
	DefaultMaxFlows   = 65536
	// MaxEntriesLimit bounds MaxSources and MaxFlows: 16M entries of 40 to
	// 56 bytes plus kernel overhead is already gigabytes.
	MaxEntriesLimit = 1 << 24
	// DefaultExpireInterval is how often expired entries are deleted when
	// Config.ExpireInterval is 0.
	DefaultExpireInterval = 10 * time.Second
)

// Config describes what to load and where to attach it. A nil *Config
// means defaults (and, for Attach, no interfaces, which is an error).
type Config struct {
	// Interfaces are the ingress interfaces to guard, by name, looked up
	// in the caller's network namespace.
	Interfaces []string
	// Mode is how to attach; ModeUnset means ModeAuto.
	Mode Mode
	// MaxSources and MaxFlows size the LRU block maps; 0 means the
	// default. When a map is full the least recently used entry is evicted
	// to make room for a new block.
	MaxSources, MaxFlows int
	// ExpireInterval is how often a goroutine deletes expired entries
	// (Close stops it); 0 means DefaultExpireInterval, negative means no
	// goroutine: the caller calls Expire itself. Expired entries already
	// pass traffic; deleting them frees their slots.
	ExpireInterval time.Duration
	// Logger receives errors from the expiry goroutine; nil discards them.
	Logger *slog.Logger
}

// Validate reports what Attach would refuse in c before it touches the
// kernel (beyond a nil or empty Interfaces, which only Attach refuses).
func (c *Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults validates c and returns a copy with defaults filled in.
func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
		out.Interfaces = append([]string(nil), c.Interfaces...)
	}
	if out.Mode == ModeUnset {
		out.Mode = ModeAuto
	}
	if out.Mode > ModeGeneric {
		return out, fmt.Errorf("xdp: config: mode %s: %w", out.Mode, ErrInvalid)
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{{"MaxSources", &out.MaxSources, DefaultMaxSources}, {"MaxFlows", &out.MaxFlows, DefaultMaxFlows}} {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0 || *f.v > MaxEntriesLimit:
			return out, fmt.Errorf("xdp: config: %s %d out of range 1..%d: %w", f.name, *f.v, MaxEntriesLimit, ErrInvalid)
		}
	}
	if out.ExpireInterval == 0 {
		out.ExpireInterval = DefaultExpireInterval
	}
	seen := make(map[string]bool, len(out.Interfaces))
	for i, name := range out.Interfaces {
		if !proto.ValidIfName(name) {
			return out, fmt.Errorf("xdp: config: Interfaces[%d] %q is not a valid interface name: %w", i, name, ErrInvalid)
		}
		if seen[name] {
			return out, fmt.Errorf("xdp: config: Interfaces[%d] %q listed twice: %w", i, name, ErrInvalid)
		}
		seen[name] = true
	}
	return out, nil
}

// Attachment reports where the program is attached and how.
type Attachment struct {
	Interface string
	Index     int
	// Mode is ModeNative or ModeGeneric, never ModeAuto.
	Mode Mode
	// Fallback, for ModeAuto attachments that ended in generic mode, says
	// why native mode failed.
	Fallback string
}

// String formats the attachment as "fw-c (native)".
func (a Attachment) String() string {
	return a.Interface + " (" + a.Mode.String() + ")"
}
