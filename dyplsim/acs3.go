package dyplsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
)

// ACS3Algorithm is the only ACS3 signature algorithm the simulator verifies
// (the default of the V2 "Tea" SDKs).
const ACS3Algorithm = "ACS3-HMAC-SHA256"

// acs3Auth is a parsed Authorization header:
//
//	ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2;...>,Signature=<hex>
type acs3Auth struct {
	algorithm, credential, signature string
	signedHeaders                    []string // lower case, as sent
}

// parseACS3Auth parses an Authorization header; it returns a reason when
// the header is not in the form above.
func parseACS3Auth(h string) (acs3Auth, string) {
	var a acs3Auth
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	a.algorithm = alg
	if !ok {
		return a, "the Authorization header must be \"" + ACS3Algorithm + " Credential=...,SignedHeaders=...,Signature=...\""
	}
	if alg != ACS3Algorithm {
		return a, "signature algorithm " + quoteShort(alg) + " is not supported; use " + ACS3Algorithm
	}
	var signed string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			a.credential = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			a.signature = v
		}
	}
	switch {
	case a.credential == "":
		return a, "the Authorization header has no Credential"
	case signed == "":
		return a, "the Authorization header has no SignedHeaders"
	case a.signature == "":
		return a, "the Authorization header has no Signature"
	}
	a.signedHeaders = strings.Split(signed, ";")
	return a, ""
}

// unsignedHeader returns the first header that must be signed but is
// missing from SignedHeaders, or "": host and every x-acs-* header the
// request carries.
func (a *acs3Auth) unsignedHeader(r *http.Request) string {
	if !slices.Contains(a.signedHeaders, "host") {
		return "host"
	}
	for k := range r.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-acs-") && !slices.Contains(a.signedHeaders, lk) {
			return lk
		}
	}
	return ""
}

// ACS3CanonicalRequest returns the canonical request of an ACS3 signature
// for r, whose body (already read) is body:
//
//	METHOD \n URI \n canonical query \n canonical headers \n signed headers \n hex(sha256(body))
//
// The canonical query is the URL query sorted by key, each key and value
// percent-encoded per RFC 3986 (a space is %20). The canonical headers are
// the signed headers in lower case, sorted, each "name:value\n" with the
// values trimmed, sorted and joined with commas; "host" is the request's
// Host. signedHeaders are the names the Authorization header lists.
func ACS3CanonicalRequest(r *http.Request, body []byte, signedHeaders []string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	uri := r.URL.EscapedPath()
	if uri == "" {
		uri = "/"
	}
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	names := make([]string, len(signedHeaders))
	for i, h := range signedHeaders {
		names[i] = strings.ToLower(strings.TrimSpace(h))
	}
	slices.Sort(names)
	for _, h := range names {
		var vals []string
		if h == "host" {
			vals = []string{r.Host}
		} else {
			for _, v := range r.Header.Values(h) {
				vals = append(vals, strings.TrimSpace(v))
			}
			slices.Sort(vals)
		}
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(strings.Join(vals, ","))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(names, ";"))
	b.WriteByte('\n')
	sum := sha256.Sum256(body)
	b.WriteString(hex.EncodeToString(sum[:]))
	return b.String()
}

// ACS3StringToSign returns ACS3Algorithm + "\n" + hex(sha256(canonicalRequest)).
func ACS3StringToSign(canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return ACS3Algorithm + "\n" + hex.EncodeToString(sum[:])
}

// ACS3Sign returns hex(HMAC-SHA256(secret, stringToSign)): the Signature
// of the Authorization header. Unlike the RPC signature the key is the
// secret itself, without a trailing "&".
func ACS3Sign(stringToSign, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(stringToSign))
	return hex.EncodeToString(m.Sum(nil))
}

// canonicalQuery sorts the query's pairs by key (then value) and encodes
// them per RFC 3986. A malformed escape is kept as sent.
func canonicalQuery(raw string) string {
	var ps []param
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if dk, ok := unescape(k); ok {
			k = dk
		}
		if dv, ok := unescape(v); ok {
			v = dv
		}
		ps = append(ps, param{k: k, v: v})
	}
	slices.SortFunc(ps, func(a, b param) int {
		if c := cmpParam(a, b); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b []byte
	for i, p := range ps {
		if i > 0 {
			b = append(b, '&')
		}
		b = appendPercentEncoded(b, p.k)
		b = append(b, '=')
		b = appendPercentEncoded(b, p.v)
	}
	return string(b)
}

// appendPercentEncoded appends s percent-encoded per RFC 3986.
func appendPercentEncoded(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
	}
	return dst
}

// verifyACS3 reports whether sig (hex) is the HMAC-SHA256 of sts under
// secret.
func verifyACS3(sts, secret, sig string) bool {
	want := ACS3Sign(sts, secret)
	return len(sig) == len(want) && subtle.ConstantTimeCompare([]byte(strings.ToLower(sig)), []byte(want)) == 1
}
