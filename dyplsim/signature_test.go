package dyplsim

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

// The worked example of dyplsapi.md §1.2.
const (
	exampleSTS = "POST&%2F&AccessKeyId%3DtestAccessKeyId%26Action%3DUpdateSubscription%26Expiration%3D2030-09-05%252012%253A00%253A00%26Format%3DJSON%26OperateType%3DupdateExpire%26PhoneNoX%3D17000000000%26PoolKey%3DFC100000000000001%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3f1c2a9e0b7d4c6a8e5f1a2b3c4d5e6f%26SignatureType%3D%26SignatureVersion%3D1.0%26SubsId%3D1000000768790001%26Timestamp%3D2025-01-01T00%253A00%253A00Z%26Version%3D2017-05-25"
	exampleSig = "h22JI6iN3iNW4/M3zF9oM2u0zNA="
)

func exampleParams() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{
		"AccessKeyId": "testAccessKeyId", "Action": "UpdateSubscription", "Version": "2017-05-25",
		"Format": "JSON", "RegionId": "cn-hangzhou", "SignatureMethod": "HMAC-SHA1",
		"SignatureVersion": "1.0", "SignatureType": "", "SignatureNonce": "3f1c2a9e0b7d4c6a8e5f1a2b3c4d5e6f",
		"Timestamp": "2025-01-01T00:00:00Z", "PoolKey": "FC100000000000001", "SubsId": "1000000768790001",
		"PhoneNoX": "17000000000", "OperateType": "updateExpire", "Expiration": "2030-09-05 12:00:00",
	} {
		v.Set(k, s)
	}
	return v
}

func TestSignatureWorkedExample(t *testing.T) {
	t.Parallel()
	p := exampleParams()
	if got := StringToSign("POST", p); got != exampleSTS {
		t.Fatalf("StringToSign:\n got %s\nwant %s", got, exampleSTS)
	}
	if got := Sign(exampleSTS, "testAccessKeySecret"); got != exampleSig {
		t.Fatalf("Sign = %s, want %s", got, exampleSig)
	}
	if sts := SignParams("POST", p, "testAccessKeySecret"); sts != exampleSTS || p.Get("Signature") != exampleSig {
		t.Fatalf("SignParams: Signature %s", p.Get("Signature"))
	}
	// Signature itself never takes part in the string to sign.
	if got := StringToSign("POST", p); got != exampleSTS {
		t.Fatalf("StringToSign with Signature present differs")
	}
}

// The server path: parse the wire query exactly as the SDK encodes it, then
// rebuild the string to sign and verify.
func TestSignatureWorkedExampleFromWire(t *testing.T) {
	t.Parallel()
	p := exampleParams()
	p.Set("Signature", exampleSig)
	wire := p.Encode()
	if !contains(wire, "Signature=h22JI6iN3iNW4%2FM3zF9oM2u0zNA%3D") || !contains(wire, "Expiration=2030-09-05+12%3A00%3A00") {
		t.Fatalf("unexpected wire form %s", wire)
	}
	r := httptest.NewRequest("POST", "/?"+wire, nil)
	q := getAPIRequest()
	defer putAPIRequest(q)
	if err := q.parse(r); err != nil {
		t.Fatal(err)
	}
	if q.get("Expiration") != "2030-09-05 12:00:00" || q.get("Signature") != exampleSig || !q.has("SignatureType") {
		t.Fatalf("parsed params wrong: %+v", q.params)
	}
	q.sts = appendStringToSign(q.sts[:0], "POST", q.withoutSignature())
	if string(q.sts) != exampleSTS {
		t.Fatalf("server string to sign:\n got %s\nwant %s", q.sts, exampleSTS)
	}
	if !newSigner("testAccessKeySecret").verify(q.sts, exampleSig) {
		t.Fatal("verify rejected the worked example")
	}
	if newSigner("wrong").verify(q.sts, exampleSig) {
		t.Fatal("verify accepted a wrong secret")
	}
}

func TestUnescape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"abc": "abc", "a+b": "a b", "a%20b": "a b", "%C3%A9": "é", "%2a": "*", "": "",
	} {
		got, ok := unescape(in)
		if !ok || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"%", "%2", "%zz", "a%g1"} {
		if _, ok := unescape(bad); ok {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`plain`: `"plain"`, `a"b\c`: `"a\"b\\c"`, "t\tn\n\x01": `"t\tn\n\u0001"`, "é": `"é"`, "\xff": `"\ufffd"`,
	} {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
}
