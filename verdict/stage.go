package verdict

import (
	"github.com/qguard/qguard/verdict/packet"
)

// Stage is a user-supplied step of the pipeline. Stages run in the order
// they were added, before the policy's rules, on every packet whose flow has
// no cached decision (so a flow stops reaching the stages once the rules
// decide it). Decide may fill d and return true to end evaluation: the
// decision is then final for this packet and not cached. Returning false
// passes the packet on; fields set in d (a mark, say) stay unless a later
// stage or the matching rule overwrites them.
//
// A stage runs on the pipeline's goroutine and must not keep c or anything
// it points to after returning: the packet bytes belong to the queue.
type Stage interface {
	Name() string
	Decide(c *Context, d *Decision) (final bool)
}

// Context is what a Stage sees of a packet. The pipeline reuses it.
type Context struct {
	Raw    []byte         // the IP packet
	Packet *packet.Packet // decoded
	Meta   *Meta
	// Reply is true when the packet travels from the flow's responder to
	// its initiator.
	Reply bool
	// FlowPackets counts the flow's packets so far while it is undecided,
	// this one included (0 for packets outside the flow table: non-first
	// fragments).
	FlowPackets int
}

// Use appends a stage. Call it before the pipeline's first Decide, from the
// goroutine that owns the pipeline.
func (p *Pipeline) Use(s Stage) { p.stages = append(p.stages, s) }

// StageFunc adapts a function to the Stage interface.
type StageFunc struct {
	StageName string
	Func      func(c *Context, d *Decision) bool
}

// Name returns f.StageName.
func (f StageFunc) Name() string { return f.StageName }

// Decide calls f.Func.
func (f StageFunc) Decide(c *Context, d *Decision) bool { return f.Func(c, d) }
