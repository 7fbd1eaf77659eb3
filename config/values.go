package config

import (
	"encoding"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qguard/qguard/internal/yamlpos"
	"github.com/qguard/qguard/proto"
	"github.com/qguard/qguard/queue"
	"github.com/qguard/qguard/verdict"
)

// scalarString returns a scalar's text, reporting lists, mappings and null.
func (d *decoder) scalarString(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errf(n, "%s: expected a single value, found %s", what, yamlpos.Kind(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(dst *string, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			*dst = ""
			return
		}
		if s, ok := d.scalarString(n, what); ok {
			*dst = s
		}
	}
}

func (d *decoder) boolean(dst *bool, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errf(n, "%s: expected true or false, found %s", what, yamlpos.Kind(n))
			return
		}
		*dst = n.Value == "true" || n.Value == "True" || n.Value == "TRUE"
	}
}

// flag sets or clears bit in *dst from a boolean.
func (d *decoder) flag(dst *queue.Flags, bit queue.Flags, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		on := *dst&bit != 0
		d.boolean(&on, what)(n)
		if on {
			*dst |= bit
		} else {
			*dst &^= bit
		}
	}
}

// text decodes a scalar with the owner type's UnmarshalText: the package
// that uses the setting validates it, and its error gets the key and place.
func (d *decoder) text(dst encoding.TextUnmarshaler, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		s, ok := d.scalarString(n, what)
		if !ok {
			return
		}
		if err := dst.UnmarshalText([]byte(s)); err != nil {
			d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Col: n.Column, Msg: what + ": " + err.Error(), Err: err})
		}
	}
}

// intIn parses an integer within [lo, hi]; on error it reports and returns
// def.
func (d *decoder) intIn(n *yaml.Node, what string, lo, hi int, def int) int {
	v, ok := d.integer(n, what)
	if !ok {
		return def
	}
	if v < int64(lo) || v > int64(hi) {
		d.errf(n, "%s: %d is out of range; expected %d to %d", what, v, lo, hi)
		return def
	}
	return int(v)
}

func (d *decoder) uintIn(n *yaml.Node, what string, lo, hi uint64, def uint64) uint64 {
	v, ok := d.integer(n, what)
	if !ok {
		return def
	}
	if v < 0 || uint64(v) < lo || uint64(v) > hi {
		d.errf(n, "%s: %d is out of range; expected %d to %#x", what, v, lo, hi)
		return def
	}
	return uint64(v)
}

func (d *decoder) integer(n *yaml.Node, what string) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errf(n, "%s: expected a whole number, found %s", what, yamlpos.Kind(n))
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil {
		d.errf(n, "%s: %q is not a whole number that fits 64 bits", what, n.Value)
		return 0, false
	}
	return v, true
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1}}

// sizeIn parses a byte size: a number or a number with a unit (8MiB, 64KB).
func (d *decoder) sizeIn(n *yaml.Node, what string, lo, hi int64, def int64) int64 {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		return int64(d.intIn(n, what, int(lo), int(hi), int(def)))
	}
	s, ok := d.scalarString(n, what)
	if !ok {
		return def
	}
	for _, u := range sizeUnits {
		num, found := strings.CutSuffix(s, u.suffix)
		if !found {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) {
			break
		}
		v := f * float64(u.mult)
		if v < float64(lo) || v > float64(hi) {
			d.errf(n, "%s: %s is out of range; expected %d to %d bytes", what, s, lo, hi)
			return def
		}
		return int64(v)
	}
	d.errf(n, "%s: %q is not a size; expected bytes like 65535, 64KiB or 8MiB", what, s)
	return def
}

func (d *decoder) oneOf(dst *string, what string, allowed ...string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		s, ok := d.scalarString(n, what)
		if !ok {
			return
		}
		for _, a := range allowed {
			if s == a {
				*dst = s
				return
			}
		}
		d.errf(n, "%s: unknown value %q; expected one of: %s", what, s, strings.Join(allowed, ", "))
	}
}

func (d *decoder) duration(dst *time.Duration, what string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!int" && n.Value == "0" {
			*dst = 0
			return
		}
		s, ok := d.scalarString(n, what)
		if !ok {
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			d.errf(n, "%s: %q is not a duration; expected a positive number with a unit, like 500ms, 30s, 10m or 2h", what, s)
			return
		}
		*dst = v
	}
}

// action parses accept, drop or reject; alert too for a rule's own action.
func (d *decoder) action(n *yaml.Node, what string, def verdict.Action) verdict.Action {
	s, ok := d.scalarString(n, what)
	if !ok {
		return def
	}
	a, ok := verdict.ParseAction(s)
	alert := what == "action" // a rule's own action; alert is nothing else's
	if !ok || a == verdict.ActionAlert && !alert {
		exp := "accept, drop or reject"
		if alert {
			exp = "accept, drop, reject or alert"
		}
		d.errf(n, "%s: unknown action %q; expected %s", what, s, exp)
		return def
	}
	return a
}

var ratePers = map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "sec": time.Second,
	"m": time.Minute, "min": time.Minute, "h": time.Hour, "hour": time.Hour}

// rate parses "N/unit" (10/s, 600/m, 5/h); with allowOff, "off" or 0 is the
// zero rate.
func (d *decoder) rate(n *yaml.Node, what string, allowOff bool, def verdict.Rate) verdict.Rate {
	if allowOff && n.Kind == yaml.ScalarNode && (n.Value == "off" || n.Value == "0" && n.Tag == "!!int") {
		return verdict.Rate{}
	}
	s, ok := d.scalarString(n, what)
	if !ok {
		return def
	}
	num, unit, found := strings.Cut(s, "/")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	per, okUnit := ratePers[strings.TrimSpace(unit)]
	if !found || err != nil || !okUnit || !(f > 0) || math.IsInf(f, 0) {
		off := ""
		if allowOff {
			off = ", or off"
		}
		d.errf(n, "%s: %q is not a rate; expected a positive count per unit like 10/s, 600/m or 5/h%s", what, s, off)
		return def
	}
	return verdict.Rate{Events: f, Per: per}
}

// ports parses a list of ports and ranges: [53, "8000-8100"].
func (d *decoder) ports(n *yaml.Node, what string) []proto.PortRange {
	var out []proto.PortRange
	d.list(n, what, func(it *yaml.Node) {
		if r, ok := d.portRange(it, what); ok {
			out = append(out, r)
		}
	})
	return out
}

func (d *decoder) portRange(n *yaml.Node, what string) (proto.PortRange, bool) {
	s, ok := d.scalarString(n, what)
	if !ok {
		return proto.PortRange{}, false
	}
	r, err := proto.ParsePortRange(s)
	switch {
	case errors.Is(err, proto.ErrPortsBackward):
		d.errf(n, "%s: range %q runs backwards; expected the lower port first", what, s)
	case err != nil:
		d.errf(n, "%s: %q is not a port; expected a number 0-65535 or a range like \"8000-8100\"", what, s)
	default:
		return r, true
	}
	return proto.PortRange{}, false
}

// ident parses a name of letters, digits, '-' and '_'.
func (d *decoder) ident(dst *string, n *yaml.Node, what string) {
	s, ok := d.scalarString(n, what)
	if !ok {
		return
	}
	if s == "" || len(s) > 64 || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		d.errf(n, "%s: %q: expected 1 to 64 letters, digits, '-' or '_'", what, s)
		return
	}
	*dst = s
}

func (d *decoder) ifaceNames(n *yaml.Node, what string) []string {
	var out []string
	d.list(n, what, func(it *yaml.Node) {
		s, ok := d.scalarString(it, what)
		if !ok {
			return
		}
		if !proto.ValidIfName(s) {
			d.errf(it, "%s: %q is not an interface name; expected up to 15 characters without '/', ':' or spaces", what, s)
			return
		}
		out = append(out, s)
	})
	return out
}

func (d *decoder) listenAddr(dst *string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "") {
			*dst = ""
			return
		}
		s, ok := d.scalarString(n, "metrics.listen")
		if !ok {
			return
		}
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			d.errf(n, "metrics.listen: %q: expected host:port like 127.0.0.1:9477, or \"\" to disable", s)
			return
		}
		*dst = s
	}
}

// flowMax is flows.max: at least 8, at most verdict.MaxFlowCapacity, with
// the memory a larger table would take in the error.
func (d *decoder) flowMax(n *yaml.Node, def int) int {
	v, ok := d.integer(n, "flows.max")
	if !ok {
		return def
	}
	if v < 8 {
		d.errf(n, "flows.max: %d is out of range; expected 8 to %d", v, verdict.MaxFlowCapacity)
		return def
	}
	if v > verdict.MaxFlowCapacity {
		need := FormatBytes(verdict.FlowTableBytes(int(v)))
		if v > 1<<54 { // FlowTableBytes saturates
			need = "more than " + need
		}
		d.errf(n, "flows.max: %d needs %s per queue (%d bytes a flow, rounded up to a power of two); the limit is %d (%s per queue): lower it, or spread the flows over more queues (queue.count)",
			v, need, verdict.FlowEntrySize,
			verdict.MaxFlowCapacity, FormatBytes(verdict.FlowTableBytes(verdict.MaxFlowCapacity)))
		return def
	}
	return int(v)
}

// FormatBytes formats a byte count with binary units: "64 GiB", "16 MiB".
func FormatBytes(b uint64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f, i := float64(b), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) + " " + units[i]
}
