//go:build !linux

package ruletest

import (
	"context"
	"errors"
)

// ErrUnsupported: running test files needs Linux (namespaces, nftables,
// nfnetlink_queue). Parsing works everywhere.
var ErrUnsupported = errors.New("qguard test needs Linux")

// Options tune Run; see the Linux version.
type Options struct {
	Jobs    int
	Prefix  string
	Verbose bool
	OnCase  func(CaseResult)
	Mode    string
}

// DefaultPrefix names the namespaces of a run.
const DefaultPrefix = "qgrt"

// Run fails every file: there are no network namespaces here.
func Run(ctx context.Context, files []*File, o *Options) *Report {
	rep := &Report{}
	for _, f := range files {
		rep.add(FileResult{Path: f.Path, Error: ErrUnsupported.Error()})
	}
	return rep
}
