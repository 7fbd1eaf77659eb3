package bench

import "strings"

// Family is who forwards a mode's packets: the chart colours its bars by it.
type Family string

// Families, in the chart legend's order.
const (
	FamilyKernel  Family = "kernel"     // the kernel alone: forwarding, nftables sets
	FamilyC       Family = "c"          // the C peer on libnetfilter_queue
	FamilyGo      Family = "go-nfqueue" // the go-nfqueue peer
	FamilyLibrary Family = "qguard"     // qguard's queue engine as a library (its peer process)
	FamilyDaemon  Family = "daemon"     // `qguard run`, the daemon people deploy
)

// families lists every family in legend order, with its legend text.
var families = []struct {
	f     Family
	label string
}{
	{FamilyKernel, "kernel only"},
	{FamilyC, "C, libnetfilter_queue"},
	{FamilyGo, "go-nfqueue"},
	{FamilyLibrary, "qguard library"},
	{FamilyDaemon, "qguard daemon"},
}

// GroupDaemon is the group of the modes that run `qguard run`.
const GroupDaemon = "daemon"

// family is the result's Family, or, in reports that predate the field,
// the one its group and name imply.
func (r *Result) family() Family {
	if r.Family != "" {
		return r.Family
	}
	name := strings.TrimPrefix(r.Mode, "flood-")
	switch {
	case r.Group == GroupDaemon || strings.HasPrefix(name, "daemon"):
		return FamilyDaemon
	case r.Group == GroupLimit || strings.HasPrefix(name, "kernel") || strings.HasPrefix(name, "nftset"):
		return FamilyKernel
	case strings.HasPrefix(name, "c-nfq"):
		return FamilyC
	case strings.HasPrefix(name, "go-nfqueue"):
		return FamilyGo
	}
	return FamilyLibrary
}
