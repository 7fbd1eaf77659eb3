package ruletest

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// CaseResult is the outcome of one case.
type CaseResult struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Skipped cases neither pass nor fail: the kernel lacks a feature the
	// file needs (Detail says which).
	Skipped bool `json:"skipped,omitempty"`
	// Sent describes the traffic: "tcp 198.18.1.2 -> 198.18.2.2:23".
	Sent     string `json:"sent"`
	Expected string `json:"expected"`
	// ExpectedRule is the case's `rule:`, empty when unchecked.
	ExpectedRule string `json:"expected_rule,omitempty"`
	Outcome      string `json:"outcome"`
	Detail       string `json:"detail"`
	// Rule is the rule that decided the case's traffic as the engine
	// counted it (cases checking rule or metrics), or as the trace of its
	// first packets explains it otherwise. Empty when unknown.
	Rule string `json:"rule,omitempty"`
	// Failures lists every unmet expectation.
	Failures []string `json:"failures,omitempty"`
	// Trace explains, rule by rule, how the policy decides the case's
	// first packets (filled on failure, or always with Options.Verbose).
	Trace    string        `json:"trace,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	unsent   bool          // the probe's connection timed out before its data was sent
}

// FileResult is the outcome of one file.
type FileResult struct {
	Path string `json:"path"`
	// Error is set when the file could not run at all (topology, engine);
	// its cases are then failed with this error.
	Error    string        `json:"error,omitempty"`
	Cases    []CaseResult  `json:"cases"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is the outcome of a run.
type Report struct {
	Files    []FileResult  `json:"files"`
	Passed   int           `json:"passed"`
	Failed   int           `json:"failed"`
	Skipped  int           `json:"skipped"`
	Duration time.Duration `json:"duration_ns"`
}

// Summary is the closing line: "N passed, N failed", followed by
// ", N skipped" when a case was skipped.
func (r *Report) Summary() string {
	s := fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", r.Skipped)
	}
	return s
}

func (r *Report) add(f FileResult) {
	failed := 0
	for _, c := range f.Cases {
		if c.Skipped {
			r.Skipped++
		} else if c.Passed {
			r.Passed++
		} else {
			failed++
		}
	}
	if f.Error != "" && failed == 0 {
		failed = 1 // a file that could not finish never passes
	}
	r.Failed += failed
	r.Files = append(r.Files, f)
}

// describe renders what a case sends, for humans.
func describe(c *Case, src netip.Addr, dst netip.Addr) string {
	s := &c.Send
	from := src.String()
	if c.FromFirewall {
		from = "firewall"
		var extra []string
		if c.UID != nil {
			extra = append(extra, fmt.Sprintf("uid %d", *c.UID))
		}
		if c.GID != nil {
			extra = append(extra, fmt.Sprintf("gid %d", *c.GID))
		}
		if c.SocketMark != 0 {
			extra = append(extra, fmt.Sprintf("so_mark %#x", c.SocketMark))
		}
		if len(extra) > 0 {
			from += " (" + strings.Join(extra, ", ") + ")"
		}
	}
	to := netip.AddrPortFrom(dst, s.Port).String()
	var what string
	switch s.Kind {
	case KindTCP:
		what = "tcp connect"
		if len(s.Data) > 0 {
			what += fmt.Sprintf(" + %q", s.Data)
		}
	case KindUDP:
		what = fmt.Sprintf("udp %q", s.Data)
	case KindICMP:
		what, to = "icmp echo", dst.String()
	case KindDNS:
		over := "udp"
		if s.OverTCP {
			over = "tcp"
		}
		what = fmt.Sprintf("dns/%s query %s %s", over, dnsTypeName(s.QType), s.Name)
	case KindTLS:
		what = fmt.Sprintf("tls ClientHello sni=%s", s.SNI)
	case KindHTTP:
		what = fmt.Sprintf("http GET %s Host: %s", s.Path, s.Host)
	}
	if e := describeEvasion(s); e != "" {
		what += " (" + e + ")"
	}
	if s.SPort != 0 {
		from = netip.AddrPortFrom(src, s.SPort).String()
	}
	out := fmt.Sprintf("%s %s -> %s", what, from, to)
	if c.Repeat > 1 {
		out += fmt.Sprintf(" (x%d)", c.Repeat)
	}
	return out
}

func dnsTypeName(t uint16) string {
	for n, v := range dnsTypes {
		if uint16(v) == t {
			return n
		}
	}
	return fmt.Sprint(t)
}

// describeEvasion says how a probe sends its message, for the report.
func describeEvasion(s *Send) string {
	var parts []string
	if s.First != "" {
		parts = append(parts, "after "+s.First)
	}
	if s.Together {
		parts = append(parts, "in one segment with it")
	}
	if s.Split {
		parts = append(parts, "length prefix alone")
	}
	if s.Records > 1 {
		parts = append(parts, fmt.Sprintf("ClientHello in %d records", s.Records))
	}
	if s.ExtHeaders > 0 {
		parts = append(parts, fmt.Sprintf("behind %d extension headers", s.ExtHeaders))
	}
	return strings.Join(parts, ", ")
}
