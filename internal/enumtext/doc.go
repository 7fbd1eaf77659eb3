// Package enumtext parses the text forms of the small enums that settings
// are made of (queue.VerdictMode, rules.Mode, xdp.Mode, ...): one lookup and
// one error wording, so that every setting names its value and the
// accepted ones alike.
package enumtext
