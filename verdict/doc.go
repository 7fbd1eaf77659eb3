// Package verdict decides what happens to each queued packet: it
// evaluates the policy on the decoded packet and the names its flow
// reveals, and remembers per-flow decisions.
//
// # Layout
//
// Decoding is package [github.com/qguard/qguard/verdict/packet]; the
// application-layer extractors and payload patterns are package
// [github.com/qguard/qguard/verdict/l7]. This package joins them: policy,
// compilation, the pipeline and the flow table.
//
// # Policy and pipeline
//
// [Compile] turns a [Policy] (an ordered list of rules and a default action)
// into a [Compiled] policy; a [Pipeline] decodes each packet, runs user
// [Stage]s, evaluates the rules and caches per-flow decisions in its
// [FlowTable]. [Pipeline.Trace] explains which rule matched and why.
//
// # Streams
//
// The pipeline follows TCP DNS streams and HTTP/1.x connections message
// by message (framing, request bodies, keep-alive), so that every message
// is judged, and feeds TLS and QUIC ClientHellos to per-flow buffers drawn
// from bounded pools.
//
// # Concurrency
//
// A compiled policy is read-only. A Pipeline, with its flow table, belongs
// to one queue goroutine; Pipeline.Swap may be called from any goroutine.
package verdict
