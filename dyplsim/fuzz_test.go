package dyplsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fuzzNonce makes every fuzzed request's nonce new, so that only the
// signature decides.
var fuzzNonce atomic.Int64

// fuzzSim is a simulator with no quota to speak of, shared by a fuzz run.
func fuzzSim(f *testing.F) *Sim {
	sim, err := New(Config{Seed: 1, RandSeed: 1, QPS: 1e9, QueryQPS: 1e9})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(sim.Close)
	return sim
}

// serve sends r to sim and returns the status and the answer's Code.
func serve(sim *Sim, r *http.Request) (int, string) {
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, r)
	var body struct{ Code string }
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if body.Code == "" && strings.Contains(w.Body.String(), "<Code>") {
		s := w.Body.String()
		body.Code = s[strings.Index(s, "<Code>")+6:]
		body.Code = body.Code[:max(0, strings.Index(body.Code, "<"))]
	}
	return w.Code, body.Code
}

// FuzzRPCSignature sends arbitrary query strings and bodies (no panic), then
// the same parameters with valid credentials, time and nonce, signed with
// the fuzzed secret. A forged signature (a secret other than the AccessKey's,
// or a request changed after signing) never passes; the right one always
// does.
func FuzzRPCSignature(f *testing.F) {
	sim := fuzzSim(f)
	f.Add("Action=UpdateSubscription&SubsId=1&PhoneNoX=17000000000&OperateType=updateNoA&PhoneNoA=13800138000", DefaultAccessKeySecret, uint16(3), []byte("a=b"))
	f.Add("SubsId=%E4%B8%AD&OutId=a+b%2Bc&OutId=dup&=x&Format=XML", "testAccessKeySecreT", uint16(40), []byte{})
	f.Add("%zz&;&&Signature=abc", "", uint16(0), []byte("%%%"))
	f.Fuzz(func(t *testing.T, rawQuery, secret string, flip uint16, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		r.URL.RawQuery = rawQuery
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		serve(sim, r) // anything goes, but no panic

		params, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		for k, v := range rawParams("QuerySubscriptionDetail", "fz-"+strconv.FormatInt(fuzzNonce.Add(1), 10), time.Now()) {
			params[k] = v
		}
		delete(params, "Signature")
		SignParams(http.MethodPost, params, secret)
		query := params.Encode()
		if i := int(flip) % (len(query) + 1); flip&0x8000 != 0 && i < len(query) {
			// Change the request after signing, by one byte.
			changed := query[:i] + string(query[i]^byte(flip>>8&0x7f|1)) + query[i+1:]
			if p, err := url.ParseQuery(changed); err == nil && !sameFirstValues(p, params) {
				query, secret = changed, "forged"
			}
		}
		r = httptest.NewRequest(http.MethodPost, "/", nil)
		r.URL.RawQuery = query
		status, code := serve(sim, r)
		switch forged := secret != DefaultAccessKeySecret; {
		case forged && code != "SignatureDoesNotMatch" && code != "SignatureNonceUsed" && !strings.HasPrefix(code, "InvalidTimeStamp"):
			t.Fatalf("forged request %q answered %d %q, want SignatureDoesNotMatch", query, status, code)
		case !forged && code == "SignatureDoesNotMatch":
			t.Fatalf("rightly signed request %q refused: %d %q", query, status, code)
		}
	})
}

// sameFirstValues reports whether a and b give every key the same first
// value (the simulator reads the first of repeated keys).
func sameFirstValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || len(v) == 0 || len(w) == 0 || v[0] != w[0] {
			return false
		}
	}
	return true
}

// FuzzACS3Signature sends requests with an arbitrary Authorization header
// and otherwise valid ACS3 headers: none passes the gateway, whatever the
// header holds, and nothing panics.
func FuzzACS3Signature(f *testing.F) {
	sim := fuzzSim(f)
	f.Add(ACS3Algorithm+" Credential="+DefaultAccessKeyID+",SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=00", "SubsId=1")
	f.Add(ACS3Algorithm+" Credential="+DefaultAccessKeyID+",SignedHeaders=,Signature=", "")
	f.Add("ACS3-HMAC-SHA256 Credential=,,,,=", "%")
	f.Fuzz(func(t *testing.T, auth, body string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		sum := sha256.Sum256([]byte(body))
		r.Header.Set("Authorization", auth)
		r.Header.Set("x-acs-action", "QuerySubscriptionDetail")
		r.Header.Set("x-acs-version", APIVersion)
		r.Header.Set("x-acs-date", time.Now().UTC().Format(TimestampLayout))
		r.Header.Set("x-acs-signature-nonce", "fz-"+strconv.FormatInt(fuzzNonce.Add(1), 10))
		r.Header.Set("x-acs-content-sha256", hex.EncodeToString(sum[:]))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		switch status, code := serve(sim, r); code {
		case "SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId.NotFound", "MissingParameter", "InvalidParameter":
		default:
			t.Fatalf("Authorization %q answered %d %q: a forged signature passed", auth, status, code)
		}
	})
}
