package dypls

import (
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	cases := []struct {
		raw, scheme, host, err string
	}{
		{DefaultEndpoint, "HTTPS", "dyplsapi.aliyuncs.com", ""},
		{"https://dyplsapi.aliyuncs.com/", "HTTPS", "dyplsapi.aliyuncs.com", ""},
		{"http://127.0.0.1:8086", "HTTP", "127.0.0.1:8086", ""},
		{"HTTP://localhost:18080", "HTTP", "localhost:18080", ""},
		{"https://[::1]:8443", "HTTPS", "[::1]:8443", ""},
		{"ftp://127.0.0.1:8086", "", "", "scheme must be http or https"},
		{"http://127.0.0.1:8086/dyplsapi", "", "", "must not have a path"},
		{"127.0.0.1:8086", "", "", "want a URL"},
		{"dyplsapi.aliyuncs.com", "", "", "want a URL"},
		{"", "", "", "want a URL"},
		{"http://", "", "", "want a URL"},
	}
	for _, c := range cases {
		scheme, host, err := parseEndpoint(c.raw)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "DYPLS_ENDPOINT") {
				t.Errorf("parseEndpoint(%q) = %q, %q, %v; want an error with %q", c.raw, scheme, host, err, c.err)
			}
			continue
		}
		if err != nil || scheme != c.scheme || host != c.host {
			t.Errorf("parseEndpoint(%q) = %q, %q, %v; want %q, %q", c.raw, scheme, host, err, c.scheme, c.host)
		}
	}
}

// TestDefaultEndpointIsHTTPS: a client without an endpoint talks HTTPS to
// the public endpoint.
func TestDefaultEndpointIsHTTPS(t *testing.T) {
	c, err := New(Config{AccessKeyID: "id", AccessKeySecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if c.scheme != "HTTPS" || c.host != "dyplsapi.aliyuncs.com" {
		t.Fatalf("scheme %q host %q", c.scheme, c.host)
	}
}

func TestRedactTokens(t *testing.T) {
	cases := []struct{ in, want string }{
		{"no token here", "no token here"},
		{"POST /?RegionId=cn-hangzhou&SecurityToken=CAIS%2Babc%2Fdef%3D%3D&Signature=x",
			"POST /?RegionId=cn-hangzhou&SecurityToken=***&Signature=x"},
		{"is:POST&%2F&RegionId%3Dcn%26SecurityToken%3DCAIS%252Babc%252F%253D%26SignatureMethod%3DHMAC-SHA1",
			"is:POST&%2F&RegionId%3Dcn%26SecurityToken%3D***%26SignatureMethod%3DHMAC-SHA1"},
		{"cut off: SecurityToken%3DCAISabcdef", "cut off: SecurityToken%3D***"},
		{"BearerToken=abc&x=1", "BearerToken=***&x=1"},
	}
	for _, c := range cases {
		if got := redactTokens(c.in); got != c.want {
			t.Errorf("redactTokens(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRedactSecrets(t *testing.T) {
	in := `refresh credentials from http://127.0.0.1:1/c failed: {"AccessKeyId":"STS.abc","AccessKeySecret":"s3kr1t","SecurityToken":"CAIStok+/=",` +
		"\n" + `"Expiration":null} OIDCToken=eyJhbGc&x=1`
	got := redactSecrets(in)
	for _, s := range []string{"s3kr1t", "CAIStok", "eyJhbGc", "\n"} {
		if strings.Contains(got, s) {
			t.Errorf("redactSecrets left %q: %s", s, got)
		}
	}
	if !strings.Contains(got, "STS.abc") || !strings.Contains(got, "http://127.0.0.1:1/c") {
		t.Errorf("redactSecrets hid too much: %s", got)
	}
}
