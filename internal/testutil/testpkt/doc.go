// Package testpkt builds packets and application-layer messages for tests,
// byte by byte, so every test states the header values it depends on.
//
// # Checksums
//
// Checksums are left zero: the decoder does not verify them (the kernel
// did before queueing).
package testpkt
