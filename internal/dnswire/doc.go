// Package dnswire reads DNS names as they stand in a message (RFC 1035
// 3.1 and 4.1.4): labels, compression pointers and the bounds an attacker
// tests. It is the one name decoder of the packet path (verdict/l7's DNS
// questions) and of the answer parser (names), so a name reads the same to
// the dns matcher and to dst_name.
//
// # Allocation
//
// [ReadName] writes into the caller's buffer and [SkipName] reads nothing
// but length bytes: neither allocates.
package dnswire
