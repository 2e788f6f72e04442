package dyplsim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// hostID is the HostId of gateway error bodies.
const hostID = "dyplsapi.aliyuncs.com"

var (
	contentTypeJSON = []string{"application/json;charset=utf-8"}
	contentTypeHTML = []string{"text/html"}
)

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', upperHex[c>>4], upperHex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// enc writes a response body as JSON or, when xml is set, as XML (the
// gateway's answer to Format=XML). The JSON path allocates nothing.
type enc struct {
	dst   []byte
	xml   bool
	first bool // the next JSON field is the first of its object
}

// open starts the body: "{" or the XML declaration and <root>.
func (e *enc) open(root string) {
	if e.xml {
		e.dst = append(e.dst, "<?xml version='1.0' encoding='UTF-8'?><"...)
		e.dst = append(e.dst, root...)
		e.dst = append(e.dst, '>')
	} else {
		e.dst = append(e.dst, '{')
	}
	e.first = true
}

// close ends the body opened with root.
func (e *enc) close(root string) { e.end(root) }

// begin starts a nested object.
func (e *enc) begin(name string) {
	e.name(name)
	if !e.xml {
		e.dst = append(e.dst, '{')
	}
	e.first = true
}

// end closes a nested object (or the root).
func (e *enc) end(name string) {
	if e.xml {
		e.dst = append(e.dst, '<', '/')
		e.dst = append(e.dst, name...)
		e.dst = append(e.dst, '>')
	} else {
		e.dst = append(e.dst, '}')
	}
	e.first = false
}

// name writes ,"name": or <name>.
func (e *enc) name(name string) {
	if e.xml {
		e.dst = append(e.dst, '<')
		e.dst = append(e.dst, name...)
		e.dst = append(e.dst, '>')
		return
	}
	if !e.first {
		e.dst = append(e.dst, ',')
	}
	e.first = false
	e.dst = append(e.dst, '"')
	e.dst = append(e.dst, name...)
	e.dst = append(e.dst, '"', ':')
}

// closeName writes </name> in XML.
func (e *enc) closeName(name string) {
	if e.xml {
		e.dst = append(e.dst, '<', '/')
		e.dst = append(e.dst, name...)
		e.dst = append(e.dst, '>')
	}
}

// str writes a string field.
func (e *enc) str(name, v string) {
	e.name(name)
	if e.xml {
		e.dst = appendXMLText(e.dst, v)
	} else {
		e.dst = appendJSONString(e.dst, v)
	}
	e.closeName(name)
}

// cdata writes a string field, in XML as a CDATA section (as the gateway
// does for Recommend).
func (e *enc) cdata(name, v string) {
	if !e.xml || strings.Contains(v, "]]>") {
		e.str(name, v)
		return
	}
	e.name(name)
	e.dst = append(e.dst, "<![CDATA["...)
	e.dst = append(e.dst, v...)
	e.dst = append(e.dst, "]]>"...)
	e.closeName(name)
}

// int writes a number field.
func (e *enc) int(name string, n int64) {
	e.name(name)
	e.dst = strconv.AppendInt(e.dst, n, 10)
	e.closeName(name)
}

// bool writes a boolean field.
func (e *enc) bool(name string, b bool) {
	e.name(name)
	e.dst = strconv.AppendBool(e.dst, b)
	e.closeName(name)
}

// appendXMLText appends s escaped as XML character data. Invalid UTF-8 and
// characters XML cannot carry become U+FFFD.
func appendXMLText(dst []byte, s string) []byte {
	for _, r := range s {
		switch {
		case r == '<':
			dst = append(dst, "&lt;"...)
		case r == '>':
			dst = append(dst, "&gt;"...)
		case r == '&':
			dst = append(dst, "&amp;"...)
		case r == '"':
			dst = append(dst, "&quot;"...)
		case r == '\'':
			dst = append(dst, "&apos;"...)
		case r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r != utf8.RuneError && r != 0xFFFE && r != 0xFFFF:
			dst = utf8.AppendRune(dst, r)
		default:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		}
	}
	return dst
}

// appendGatewayError appends the body of a POP gateway error: JSON, or XML
// with root <Error> when xml is set.
func appendGatewayError(dst []byte, xml bool, requestID, code, message string) []byte {
	e := enc{dst: dst, xml: xml}
	e.open("Error")
	e.str("RequestId", requestID)
	e.str("HostId", hostID)
	e.str("Code", code)
	e.str("Message", message)
	e.cdata("Recommend", recommendURL(code, requestID))
	e.close("Error")
	return e.dst
}

// recommendURL is the troubleshooting address a gateway error recommends:
// it names the code and the request.
func recommendURL(code, requestID string) string {
	return "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(code) +
		"&product=Dyplsapi&requestId=" + url.QueryEscape(requestID)
}

var contentTypeXML = []string{"text/xml;charset=utf-8"}

// writeBody sends body with status and the content type of its format.
func writeBody(w http.ResponseWriter, status int, xml bool, requestID string, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	if xml {
		h["Content-Type"] = contentTypeXML
	}
	if requestID != "" {
		h["X-Acs-Request-Id"] = []string{requestID}
	}
	w.WriteHeader(status)
	w.Write(body)
}

// idGen produces RequestIds: UUID-shaped upper-case hex strings derived from
// a seed and a counter, so that a run with a fixed RandSeed repeats them.
type idGen struct {
	seed atomic.Uint64
	n    atomic.Uint64
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// next returns the next RequestId, for example
// "986BCB6D-C9BF-42F9-91CE-3A9901233D36".
func (g *idGen) next() string {
	n := g.n.Add(1)
	hi := splitmix64(g.seed.Load() ^ splitmix64(n))
	lo := splitmix64(hi ^ n)
	var b [36]byte
	put := func(i int, v uint64, digits int) {
		for j := digits - 1; j >= 0; j-- {
			b[i+j] = upperHex[v&15]
			v >>= 4
		}
	}
	put(0, hi>>32, 8)
	b[8] = '-'
	put(9, hi>>16, 4)
	b[13] = '-'
	put(14, hi, 4)
	b[18] = '-'
	put(19, lo>>48, 4)
	b[23] = '-'
	put(24, lo, 12)
	return string(b[:])
}

func (g *idGen) reset(seed uint64) {
	g.seed.Store(seed)
	g.n.Store(0)
}
