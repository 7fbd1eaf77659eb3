// Package l7 reads the names that application protocols reveal in the
// first bytes of a flow, and matches byte patterns in payloads.
//
// # Extractors
//
// [DNSQueryName] and [DNSQuestions] read DNS question names over UDP and
// TCP, [TLSServerName] reads the server name of a TLS ClientHello, and
// [HTTPHost] reads the Host of an HTTP/1.x request. Names are written
// lowercased into caller buffers of [MaxNameLen] bytes, so extraction
// allocates nothing. Every extractor answers with a [Status].
//
// # Reassembly
//
// A ClientHello that spans several TCP segments is collected in a
// [HelloBuffer], a bounded buffer owned by the flow. [QUICHello] reads the
// server name from a QUIC client's Initial packets (versions 1 and 2),
// decrypting them with the keys their connection ID determines and
// reassembling the ClientHello from CRYPTO frames in any order.
//
// # Payload patterns
//
// [Patterns] matches many byte strings at once, case-sensitive or not,
// with a deterministic automaton built once by [CompilePatterns].
//
// # Concurrency
//
// The extractors are pure functions. A compiled Patterns is read-only and
// safe for concurrent use; a HelloBuffer or QUICHello belongs to one flow
// and one goroutine.
package l7
