// Package config reads qguard's YAML configuration file: the queues, the
// nftables steering rules, XDP, metrics, the control socket, logging, the
// flow table and the policy.
//
// # Defaults and errors
//
// Every section is optional and every omitted key takes its default
// (examples/qguard.yaml lists them). Errors name the place they were found
// as file:line:column with a sentence saying what was expected; Parse and
// Load report every problem at once as an *ErrorList.
//
// # Parsing
//
// The file is walked as a yaml.Node tree rather than decoded into structs,
// so that unknown keys, wrong types and bad values all carry a position.
// Anchors and aliases are refused: they would let a short file expand into
// a huge one.
package config
