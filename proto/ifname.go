package proto

import "strings"

// IfNameMax is the longest interface name: IFNAMSIZ (16) less its NUL.
const IfNameMax = 15

// ValidIfName reports whether the kernel takes s as an interface name, as
// dev_valid_name (net/core/dev.c) does: 1 to IfNameMax bytes, not "." or
// "..", no '/', ':', white space or NUL. A '*' is a valid name byte; where
// qguard reads it as a wildcard is the caller's business.
func ValidIfName(s string) bool {
	return s != "" && len(s) <= IfNameMax && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\v\f\r\x00")
}
