package verdict

import (
	"time"

	"github.com/qguard/qguard/verdict/packet"
)

// Action is what happens to a packet. The zero value ActionUnset is invalid
// on purpose: a Decision that leaves the pipeline with it is a bug, and a
// Policy with an unset Default is rejected by Compile.
type Action uint8

// Actions. Marking, logging, rate limiting, flow offload and source blocking
// are rule options (see Rule), not actions of their own.
const (
	ActionUnset  Action = iota
	ActionAccept        // let the packet through
	ActionDrop          // discard it silently
	ActionReject        // discard it and answer with a TCP reset or ICMP unreachable
	// ActionAlert is a rule action only: the packet is accepted and the
	// decision reported as what the rule would do (Rule.AlertAs, drop by
	// default; Decision.Alert), so a rule can be trialled on live traffic.
	// A Decision's Action is never ActionAlert.
	ActionAlert
	numActions
)

var actionNames = [numActions]string{"unset", "accept", "drop", "reject", "alert"}

// String returns the action's name as written in a policy file.
func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return "unknown"
}

// ParseAction returns the action named s ("accept", "drop", "reject",
// "alert").
func ParseAction(s string) (Action, bool) {
	for a := ActionAccept; a < numActions; a++ {
		if actionNames[a] == s {
			return a, true
		}
	}
	return ActionUnset, false
}

// Special values of Decision.Rule besides rule indexes.
const (
	RuleDefault = -1 // no rule matched: Policy.Default
	RuleInvalid = -2 // the packet did not decode: Policy.Invalid
	RulePending = -3 // the flow waits for L7 data: accepted, evaluated again on its next packet
	RuleStage   = -4 // a user Stage decided (Decision.Stage names it)
	// RuleUndecided: a rule that could match needs L7 data that cannot be
	// read (malformed, beyond the reassembly bounds, still missing when the
	// L7 window closed): Policy.L7Undecided. Also a segment dropped because
	// it came after a hole in a stream under inspection.
	RuleUndecided = -5
)

// Names of the special Decision.Rule values (Compiled.RuleName), in
// parentheses so that they read as no rule's name. The engine's counters,
// the metrics, `qguard status`, the decision record and Trace all use them.
const (
	RuleNameDefault   = "(default)"
	RuleNameInvalid   = "(invalid)"
	RuleNamePending   = "(pending)"
	RuleNameStage     = "(stage)"
	RuleNameUndecided = "(undecided)"
)

// Decision is the outcome of Pipeline.Decide for one packet. Callers own it
// and reuse it; Decide overwrites every field.
type Decision struct {
	Action  Action
	Mark    uint32
	SetMark bool // set the packet mark to Mark
	// Offload asks for the whole flow to be decided in the kernel from now on
	// (the rule had flow: true).
	Offload bool
	// BlockSource asks for the source address to be put in the kernel block
	// set for this long. It is set on the packet that decided the flow only.
	BlockSource time.Duration
	Rule        int  // index into Policy.Rules, or RuleDefault, RuleInvalid, RulePending, RuleStage, RuleUndecided
	Cached      bool // the flow's decision came from the flow table
	// Log is set when the rule asks for logging and the log rate limit had
	// room: the caller prints the line (the pipeline never does I/O).
	Log bool
	// Limited is set when the rule's rate limit was exceeded and Action is
	// the rule's exceed action.
	Limited bool
	// Stage is the name of the user stage that decided (Rule == RuleStage).
	Stage string
	// Reason is why the packet did not decode (Rule == RuleInvalid).
	Reason packet.Reason
	// Alert is set when an alert rule decided (Action is then accept, or
	// the rate limit's exceed action): what the rule would have done,
	// ActionDrop or ActionReject. ActionUnset otherwise.
	Alert Action
}
