package dyplsim

import (
	"net/http"
	"net/url"
	"strconv"
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

// appendField appends ,"name":"value" (or "name":"value" when first).
func appendField(dst []byte, name, value string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendJSONString(dst, value)
}

// appendIntField appends ,"name":n.
func appendIntField(dst []byte, name string, n int64) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return strconv.AppendInt(dst, n, 10)
}

// appendBoolField appends ,"name":b.
func appendBoolField(dst []byte, name string, b bool) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return strconv.AppendBool(dst, b)
}

// appendBusinessHead appends {"RequestId":..,"Code":..,"Message":.. without
// the closing brace, so that callers can add more fields.
func appendBusinessHead(dst []byte, requestID, code, message string) []byte {
	dst = append(dst, '{')
	dst = appendField(dst, "RequestId", requestID, true)
	dst = appendField(dst, "Code", code, false)
	return appendField(dst, "Message", message, false)
}

// appendGatewayError appends the JSON body of a POP gateway error.
func appendGatewayError(dst []byte, requestID, code, message string) []byte {
	dst = append(dst, '{')
	dst = appendField(dst, "RequestId", requestID, true)
	dst = appendField(dst, "HostId", hostID, false)
	dst = appendField(dst, "Code", code, false)
	dst = appendField(dst, "Message", message, false)
	dst = appendField(dst, "Recommend", recommendURL(code), false)
	return append(dst, '}')
}

// recommendURL is the troubleshooting address a gateway error recommends.
func recommendURL(code string) string {
	return "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(code) + "&product=Dyplsapi"
}

// writeJSON sends body with status and the JSON content type.
func writeJSON(w http.ResponseWriter, status int, requestID string, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
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
