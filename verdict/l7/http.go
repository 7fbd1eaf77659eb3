package l7

import "bytes"

// An HTTP/1.x request starts with a request line and header fields
// (RFC 9112 3, 5):
//
//	request-line = method SP request-target SP HTTP-version CRLF
//	field-line   = field-name ":" OWS field-value OWS CRLF
//	...
//	CRLF                                   (end of the header section)
//
// The host comes from the Host field, except that an absolute-form target
// ("GET http://host/ HTTP/1.1") or a CONNECT authority overrides it, as a
// server must do (RFC 9112 3.2.2); matching Host there would let a client
// name one host and reach another.

// maxMethodLen bounds a request method.
const maxMethodLen = 32

// httpMethods are the standard request methods (RFC 9110 9.1, RFC 5789
// PATCH), recognised in any case: servers such as Go's net/http hand "get"
// to their handlers like "GET".
var httpMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// HTTPHost returns the host an HTTP/1.x request in payload is for, without
// port, lowercased into dst (capacity MaxNameLen); an IPv6 literal is
// returned without brackets. NeedMore means the header section continues
// in a later segment; two Host fields, whitespace before a colon and line
// folding are Malformed, since servers must reject them (RFC 9112 3.2,
// 5.1, 5.2). It never allocates.
func HTTPHost(payload, dst []byte) ([]byte, Status) {
	target, rest, st := HTTPRequestLine(payload)
	if st != Found {
		return nil, st
	}
	if host, ok := targetAuthority(target); ok {
		return httpHostName(host, dst)
	}
	host, st := httpHostField(rest)
	if st != Found {
		return nil, st
	}
	return httpHostName(host, dst)
}

// HTTPRequestLine checks the method and version and returns the request
// target and the bytes after the request line.
func HTTPRequestLine(b []byte) (target, rest []byte, st Status) {
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		if len(b) <= maxMethodLen && mayBeMethod(b, true) {
			return nil, nil, NeedMore // the method may go on
		}
		return nil, nil, NotProtocol
	}
	if sp == 0 || sp > maxMethodLen || !mayBeMethod(b[:sp], false) {
		return nil, nil, NotProtocol
	}
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		if len(b) > 8192 {
			return nil, nil, Malformed // request line longer than servers accept
		}
		return nil, nil, NeedMore
	}
	line := bytes.TrimSuffix(b[:eol], []byte{'\r'})
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp2 <= sp {
		return nil, nil, NotProtocol // HTTP/0.9 has no version
	}
	v := line[sp2+1:]
	if len(v) != 8 || string(v[:7]) != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		return nil, nil, NotProtocol
	}
	return line[sp+1 : sp2], b[eol+1:], Found
}

// mayBeMethod reports whether m is (or, when prefix is set, may begin) a
// method a server serves: a standard method in any case, or any other
// method in upper case (extension methods such as PROPFIND; RFC 9110 9.1:
// methods are extensible). Other tokens in lower or mixed case are taken as
// another protocol, so that a flow whose first data is a short word does
// not wait for an HTTP request.
func mayBeMethod(m []byte, prefix bool) bool {
	for _, k := range httpMethods {
		if len(m) == len(k) || prefix && len(m) < len(k) {
			if bytes.EqualFold(m, []byte(k[:len(m)])) {
				return true
			}
		}
	}
	for _, c := range m {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '!' || c == '~') {
			return false
		}
	}
	return true
}

// targetAuthority returns the authority of an absolute-form
// ("http://host:port/path") or authority-form ("host:port") target.
func targetAuthority(t []byte) ([]byte, bool) {
	if len(t) == 0 || t[0] == '/' || (len(t) == 1 && t[0] == '*') {
		return nil, false
	}
	if i := bytes.Index(t, []byte("://")); i > 0 {
		t = t[i+3:]
		if j := bytes.IndexAny(t, "/?#"); j >= 0 {
			t = t[:j]
		}
		if at := bytes.LastIndexByte(t, '@'); at >= 0 {
			t = t[at+1:] // userinfo
		}
	}
	return t, true
}

// httpHostField finds the single Host field in the header section b.
func httpHostField(b []byte) ([]byte, Status) {
	var host []byte
	found := false
	for {
		eol := bytes.IndexByte(b, '\n')
		if eol < 0 {
			if found {
				// The rest of the header section is still on its way. A second
				// Host field there makes the server answer 400, so this one stands.
				return host, Found
			}
			return nil, NeedMore
		}
		line := bytes.TrimSuffix(b[:eol], []byte{'\r'})
		b = b[eol+1:]
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, Malformed // obs-fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, Malformed
		}
		name := line[:colon]
		if bytes.ContainsAny(name, " \t") {
			return nil, Malformed
		}
		if !bytes.EqualFold(name, []byte("host")) {
			continue
		}
		if found {
			return nil, Malformed // two Host fields
		}
		found = true
		host = bytes.Trim(line[colon+1:], " \t")
	}
	if !found || len(host) == 0 {
		return nil, Absent
	}
	return host, Found
}

// httpHostName strips the port (and the brackets of an IPv6 literal) from
// host = uri-host [ ":" port ] and lowercases the name into dst.
func httpHostName(host, dst []byte) ([]byte, Status) {
	name := host
	var port []byte
	if len(host) > 0 && host[0] == '[' {
		end := bytes.IndexByte(host, ']')
		if end < 0 {
			return nil, Malformed
		}
		name, port = host[1:end], host[end+1:]
		if len(port) > 0 && port[0] != ':' {
			return nil, Malformed
		}
	} else if i := bytes.IndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	if len(port) > 0 {
		for _, c := range port[1:] {
			if c < '0' || c > '9' {
				return nil, Malformed
			}
		}
	}
	if len(name) == 0 {
		return nil, Absent
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f || c == '/' || c == '@' {
			return nil, Malformed
		}
	}
	n := appendLowerName(dst, 0, name)
	if n <= 0 {
		return nil, Malformed
	}
	return dst[:n], Found
}
