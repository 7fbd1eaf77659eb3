// Package testsrv is the set of servers the tests talk to through the
// firewall: TCP and UDP echo, a DNS responder (UDP and TCP), an HTTP/1.1
// server and a TLS echo server with a throwaway certificate.
//
// The rule-test runner (`qguard test`) and the end-to-end tests both run
// them in a server namespace, so what a client sees is the same in both.
//
// # Concurrency
//
// Every function serves until its listener or connection is closed; none
// starts goroutines it does not wait for.
package testsrv
