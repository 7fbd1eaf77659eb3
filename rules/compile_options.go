package rules

import (
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Rule options in the kernel (mode KernelFirst): log and block_source.
//
// log: a rule of its own ahead of the rule's action, with the same
// matchers, `limit rate <Policy.LogRate>/second` and `log group
// <Policy.Group()> prefix "qguard <action> <rule>"`. The policy chain sees
// the packets of new connections only, so a line is written when the rule
// decides a connection, as user space writes one when it decides a flow.
// The lines go to nflog, not to the kernel log: the daemon reads the group
// and writes them as its own "decision" lines (internal/engine, nflog).
//
// block_source: the rule's action rules add the packet's source to the
// block set (`add @block4 { ip saddr timeout d }`) before the verdict: the
// same sets user space's block requests fill, checked at the top of every
// generation chain and never deleted by a reload, so a block outlives
// reloads and restarts of the daemon as user space's does.

// logPrefixMax is the longest prefix the kernel keeps (NF_LOG_PREFIXLEN
// 128, with the terminating NUL).
const logPrefixMax = 127

// LogPrefix is the nflog prefix of the kernel's log lines for rule name
// deciding action: "qguard <action> <name>", cut to what the kernel keeps.
func LogPrefix(action Action, name string) string {
	p := "qguard " + action.String() + " " + name
	if len(p) > logPrefixMax {
		p = p[:logPrefixMax]
	}
	return p
}

// kernelOptions says why the kernel cannot run r's options, "" when it can.
func (b *builder) kernelOptions(r *PolicyRule) string {
	if r.Log && !(b.caps.Log && b.caps.Limit) {
		return "log option (no nft log with limit in this kernel: " + b.caps.LogErr + b.caps.LimitErr + ")"
	}
	return b.rateReason(r)
}

// logRule adds the log rule of r ahead of its action rules.
func (b *builder) logRule(ch *nftables.Chain, r *PolicyRule, match []expr.Any) {
	p := b.cfg.Policy
	rate := p.LogRate
	if rate == 0 {
		rate = DefaultLogRate
	}
	prefix := LogPrefix(r.Action, r.Name)
	// The rule's own comment, without a counter: show's plan groups it
	// with the rule, and its packets are counted by the action rules.
	b.rule(ch, policyNote(r.Name), match, one(
		&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rate), Unit: expr.LimitTimeSecond, Burst: rate},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
			Group: p.Group(), Snaplen: logSnaplen, Data: []byte(prefix)}))
}

// logSnaplen is how much of the packet a log line carries: the network
// and transport headers the daemon's line names (addresses, ports).
const logSnaplen = 128

// blockTail is the block_source part of an action rule for family fam
// (4 or 6): the source goes into the block set for d.
func blockTail(fam uint8, d time.Duration) []expr.Any {
	if d <= 0 {
		return nil
	}
	set := Block4Set
	if fam == 6 {
		set = Block6Set
	}
	return one(addrLoad(fam == 6, true),
		&expr.Dynset{SrcRegKey: 1, SetName: set, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: d})
}
