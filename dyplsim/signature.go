package dyplsim

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"net/url"
	"slices"
	"sync"
)

// StringToSign returns the RPC signature-v1 string to sign for an HTTP
// method and a set of request parameters, as the Alibaba Cloud SDK builds it
// (sdk/auth/rpc_signature_composer.go): every parameter except Signature,
// including empty ones such as SignatureType, sorted by key, each key and
// value percent-encoded per RFC 3986, joined as k=v with &, then
//
//	METHOD + "&%2F&" + percentEncode(canonicalizedQuery)
//
// When a key has several values only the first is used.
func StringToSign(method string, params url.Values) string {
	ps := make([]param, 0, len(params))
	for k, vs := range params {
		if k == "Signature" || len(vs) == 0 {
			continue
		}
		ps = append(ps, param{k: k, v: vs[0]})
	}
	slices.SortFunc(ps, cmpParam)
	return string(appendStringToSign(nil, method, ps))
}

// Sign returns base64(HMAC-SHA1(secret+"&", stringToSign)), the value of the
// Signature parameter.
func Sign(stringToSign, secret string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignParams sets params["Signature"] to the signature of params for method
// under secret and returns the string to sign. It lets tests build raw
// requests (for example a replayed SignatureNonce) that the simulator
// accepts.
func SignParams(method string, params url.Values, secret string) string {
	params.Del("Signature")
	sts := StringToSign(method, params)
	params.Set("Signature", Sign(sts, secret))
	return sts
}

// param is one decoded request parameter.
type param struct{ k, v string }

func cmpParam(a, b param) int {
	switch {
	case a.k < b.k:
		return -1
	case a.k > b.k:
		return 1
	}
	return 0
}

const upperHex = "0123456789ABCDEF"

// unreserved marks the bytes RFC 3986 percent-encoding leaves as they are
// (as does Go's url.QueryEscape, whose output the SDK post-processes).
var unreserved = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~'
	}
	return t
}()

// appendDoubleEncoded appends percentEncode(percentEncode(s)): the form a key
// or value takes inside the string to sign. An unreserved byte stays as is;
// any other byte b becomes "%25" followed by the two hex digits of b.
func appendDoubleEncoded(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, '%', '2', '5', upperHex[c>>4], upperHex[c&15])
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// appendStringToSign appends the string to sign for sorted params (the
// Signature parameter must already be excluded).
func appendStringToSign(dst []byte, method string, sorted []param) []byte {
	dst = append(dst, method...)
	dst = append(dst, "&%2F&"...)
	for i, p := range sorted {
		if i > 0 {
			dst = append(dst, "%26"...)
		}
		dst = appendDoubleEncoded(dst, p.k)
		dst = append(dst, "%3D"...)
		dst = appendDoubleEncoded(dst, p.v)
	}
	return dst
}

// signer verifies signatures made with one AccessKey secret. It keeps keyed
// HMAC states in a pool so that verifying allocates nothing.
type signer struct {
	secret string
	pool   sync.Pool
}

func newSigner(secret string) *signer {
	s := &signer{secret: secret}
	key := []byte(secret + "&")
	s.pool.New = func() any { return hmac.New(sha1.New, key) }
	return s
}

// verify reports whether sig (base64, as sent) is the signature of sts.
func (s *signer) verify(sts []byte, sig string) bool {
	m := s.pool.Get().(hash.Hash)
	m.Reset()
	m.Write(sts)
	var sum [sha1.Size]byte
	m.Sum(sum[:0])
	s.pool.Put(m)
	var enc [28]byte // base64 of 20 bytes
	base64.StdEncoding.Encode(enc[:], sum[:])
	return len(sig) == len(enc) && subtle.ConstantTimeCompare(enc[:], []byte(sig)) == 1
}
