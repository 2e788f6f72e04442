package dyplsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"

	"github.com/dyplsq/dyplsq/mask"
)

// newV2 returns the generic V2 client for addr with its default signature.
func newV2(t *testing.T, addr string) *openapi.Client {
	t.Helper()
	c, err := openapi.NewClient(&openapi.Config{
		AccessKeyId: dara.String(DefaultAccessKeyID), AccessKeySecret: dara.String(DefaultAccessKeySecret),
		Endpoint: dara.String(addr), Protocol: dara.String("HTTP"), RegionId: dara.String("cn-hangzhou"),
		ReadTimeout: dara.Int(5000), ConnectTimeout: dara.Int(2000),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rpcParams(action string) *openapi.Params {
	return &openapi.Params{
		Action: dara.String(action), Version: dara.String(APIVersion), Protocol: dara.String("HTTPS"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"),
		Style: dara.String("RPC"), ReqBodyType: dara.String("formData"), BodyType: dara.String("json"),
	}
}

// v2Err unwraps a V2 SDK error.
func v2Err(t *testing.T, err error) (int, string) {
	t.Helper()
	var se *tea.SDKError
	if !errors.As(err, &se) {
		t.Fatalf("want *tea.SDKError, got %T: %v", err, err)
	}
	return tea.IntValue(se.StatusCode), tea.StringValue(se.Code)
}

// Business parameters may travel in a form body: the ACS3 signature then
// covers the body's hash.
func TestACS3FormBody(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 1})
	b := SeedBinding(1)
	res, err := newV2(t, addr).CallApi(rpcParams("UpdateSubscription"), &openapi.OpenApiRequest{Body: map[string]any{
		"PoolKey": b.PoolKey, "SubsId": b.SubsId, "PhoneNoX": b.PhoneNoX, "OperateType": "updateOutId", "OutId": "in the body",
	}}, &dara.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := res["body"].(map[string]any); body["Code"] != "OK" {
		t.Fatalf("got %v", res)
	}
	if got, _ := sim.Binding(b.SubsId); got.OutId != "in the body" {
		t.Fatalf("OutId %q", got.OutId)
	}
}

// The real V2 client lets a caller override x-acs-date: the simulator
// checks it like the RPC Timestamp.
func TestACS3Date(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	b := SeedBinding(1)
	query := map[string]*string{"PoolKey": dara.String(b.PoolKey), "SubsId": dara.String(b.SubsId), "PhoneNoX": dara.String(b.PhoneNoX)}
	for date, want := range map[string]string{
		time.Now().Add(-20 * time.Minute).UTC().Format(TimestampLayout): "InvalidTimeStamp.Expired",
		time.Now().Add(20 * time.Minute).UTC().Format(TimestampLayout):  "InvalidTimeStamp.Expired",
		time.Now().UTC().Format(time.RFC1123):                           "InvalidTimeStamp.Format",
	} {
		_, err := newV2(t, addr).CallApi(rpcParams("QuerySubscriptionDetail"),
			&openapi.OpenApiRequest{Query: query, Headers: map[string]*string{"x-acs-date": dara.String(date)}}, &dara.RuntimeOptions{})
		if status, code := v2Err(t, err); status != 400 || code != want {
			t.Errorf("x-acs-date %q: HTTP %d %s, want 400 %s", date, status, code, want)
		}
	}
}

// rawACS3 sends an ACS3 request signed by the V2 SDK's own signing code
// (openapiutil.GetAuthorization); edit may change the request after
// signing. It returns the status and the decoded gateway body.
func rawACS3(t *testing.T, addr, action, body string, headers map[string]string, edit func(*http.Request)) (int, gatewayBody) {
	t.Helper()
	req := dara.NewRequest()
	req.Method = dara.String("POST")
	req.Pathname = dara.String("/")
	b := SeedBinding(1)
	req.Query = map[string]*string{"PoolKey": dara.String(b.PoolKey), "SubsId": dara.String(b.SubsId), "PhoneNoX": dara.String(b.PhoneNoX)}
	sum := sha256.Sum256([]byte(body))
	req.Headers = map[string]*string{
		"host":                  dara.String(addr),
		"x-acs-action":          dara.String(action),
		"x-acs-version":         dara.String(APIVersion),
		"x-acs-date":            openapiutil.GetTimestamp(),
		"x-acs-signature-nonce": openapiutil.GetNonce(),
		"x-acs-content-sha256":  dara.String(hex.EncodeToString(sum[:])),
	}
	if body != "" {
		req.Headers["content-type"] = dara.String("application/x-www-form-urlencoded")
	}
	for k, v := range headers {
		req.Headers[k] = dara.String(v)
	}
	req.Headers["Authorization"] = openapiutil.GetAuthorization(req, dara.String(ACS3Algorithm),
		req.Headers["x-acs-content-sha256"], dara.String(DefaultAccessKeyID), dara.String(DefaultAccessKeySecret))
	q := make([]string, 0, len(req.Query))
	for k, v := range req.Query {
		q = append(q, k+"="+*v)
	}
	hr, err := http.NewRequest("POST", "http://"+addr+"/?"+strings.Join(q, "&"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.Headers {
		if k != "host" {
			hr.Header.Set(k, *v)
		}
	}
	if edit != nil {
		edit(hr)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var g gatewayBody
	if resp.StatusCode != 200 {
		g = decodeGateway(t, string(raw))
	} else if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return resp.StatusCode, g
}

func TestACS3GatewayErrors(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	del := func(h string) func(*http.Request) { return func(r *http.Request) { r.Header.Del(h) } }
	set := func(h, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(h, v) } }
	for _, tc := range []struct {
		name   string
		action string
		body   string
		hdr    map[string]string
		edit   func(*http.Request)
		status int
		code   string
		msg    string
	}{
		{name: "valid", action: "QuerySubscriptionDetail", status: 200, code: "OK"},
		{name: "valid with form body", action: "QuerySubscriptionDetail", body: "ASRStatus=false", status: 200, code: "OK"},
		{name: "unknown action", action: "QuerySubscriptionDetails", status: 404, code: "InvalidApi.NotFound"},
		{name: "wrong version", action: "QuerySubscriptionDetail", hdr: map[string]string{"x-acs-version": "2015-01-01"},
			status: 400, code: "InvalidVersion"},
		{name: "no version", action: "QuerySubscriptionDetail", edit: del("x-acs-version"),
			status: 400, code: "MissingParameter", msg: `"x-acs-version"`},
		{name: "no date", action: "QuerySubscriptionDetail", edit: del("x-acs-date"),
			status: 400, code: "MissingParameter", msg: `"x-acs-date"`},
		{name: "no nonce", action: "QuerySubscriptionDetail", edit: del("x-acs-signature-nonce"),
			status: 400, code: "MissingParameter", msg: `"x-acs-signature-nonce"`},
		{name: "no content hash", action: "QuerySubscriptionDetail", edit: del("x-acs-content-sha256"),
			status: 400, code: "MissingParameter", msg: `"x-acs-content-sha256"`},
		{name: "no Authorization", action: "QuerySubscriptionDetail", edit: del("Authorization"),
			status: 400, code: "MissingParameter", msg: `"Authorization"`},
		{name: "Authorization without Signature", action: "QuerySubscriptionDetail",
			edit:   set("Authorization", ACS3Algorithm+" Credential="+DefaultAccessKeyID+",SignedHeaders=host;x-acs-action"),
			status: 400, code: "IncompleteSignature", msg: "no Signature"},
		{name: "other algorithm", action: "QuerySubscriptionDetail",
			edit:   set("Authorization", "ACS3-HMAC-SM3 Credential="+DefaultAccessKeyID+",SignedHeaders=host,Signature=00"),
			status: 400, code: "IncompleteSignature", msg: "ACS3-HMAC-SM3"},
		{name: "unknown key", action: "QuerySubscriptionDetail",
			edit:   set("Authorization", ACS3Algorithm+" Credential=nobody,SignedHeaders=host,Signature=00"),
			status: 404, code: "InvalidAccessKeyId.NotFound"},
		{name: "unsigned x-acs header", action: "QuerySubscriptionDetail", edit: set("x-acs-extra", "1"),
			status: 400, code: "IncompleteSignature", msg: `"x-acs-extra"`},
		{name: "tampered query", action: "QuerySubscriptionDetail",
			edit:   func(r *http.Request) { r.URL.RawQuery += "&OutId=x" },
			status: 400, code: "SignatureDoesNotMatch", msg: "server string to sign is:ACS3-HMAC-SHA256\n"},
		{name: "body does not match its hash", action: "QuerySubscriptionDetail", body: "ASRStatus=false",
			edit: func(r *http.Request) {
				r.Body, r.ContentLength = io.NopCloser(strings.NewReader("ASRStatus=true!")), 15
			},
			status: 400, code: "SignatureDoesNotMatch"},
	} {
		status, g := rawACS3(t, addr, tc.action, tc.body, tc.hdr, tc.edit)
		if status != tc.status || g.Code != tc.code || !strings.Contains(g.Message, tc.msg) {
			t.Errorf("%s: HTTP %d %s %q, want %d %s containing %q", tc.name, status, g.Code, g.Message, tc.status, tc.code, tc.msg)
		}
	}
}

// An RPC request must say SignatureMethod HMAC-SHA1 and SignatureVersion 1.0.
func TestRPCSignatureMethodAndVersion(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	for i, tc := range []struct{ key, value, want string }{
		{"SignatureMethod", "HMAC-SHA256", "InvalidSignatureMethod"},
		{"SignatureMethod", "", "MissingSignatureMethod"},
		{"SignatureVersion", "2.0", "InvalidSignatureVersion"},
		{"SignatureVersion", "", "MissingSignatureVersion"},
	} {
		p := rawParams("QuerySubscriptionDetail", "n-sig-"+string(rune('a'+i)), time.Now())
		if tc.value == "" {
			p.Del(tc.key)
		} else {
			p.Set(tc.key, tc.value)
		}
		status, body := rawPost(t, addr, p)
		if g := decodeGateway(t, body); status != 400 || g.Code != tc.want {
			t.Errorf("%s=%q: HTTP %d %s", tc.key, tc.value, status, body)
		}
	}
}

// Format=XML is answered in XML, business answers and gateway errors alike;
// the V1 SDK decodes the XML answer into its typed response.
func TestFormatXML(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 1})
	b := SeedBinding(1)
	sim.PutBinding(Binding{SubsId: b.SubsId, PhoneNoA: b.PhoneNoA, PhoneNoB: b.PhoneNoB, PhoneNoX: b.PhoneNoX,
		GroupId: "77", Extension: "0123"})
	r := dyplsapi.CreateQuerySubscriptionDetailRequest()
	r.AcceptFormat = "XML"
	r.PoolKey, r.SubsId, r.PhoneNoX = DefaultPoolKey, b.SubsId, b.PhoneNoX
	resp, err := newClient(t, addr).QuerySubscriptionDetail(r)
	if err != nil {
		t.Fatal(err)
	}
	d := resp.SecretBindDetailDTO
	if resp.Code != "OK" || resp.RequestId == "" || d.PhoneNoA != b.PhoneNoA || d.GroupId != 77 || d.Extension != "0123" || d.Status != 1 {
		t.Fatalf("XML answer decoded as %s", mask.Text(fmt.Sprintf("%+v", resp)))
	}
	if ct := resp.GetHttpHeaders()["Content-Type"]; len(ct) != 1 || ct[0] != "text/xml;charset=utf-8" ||
		!strings.HasPrefix(resp.GetHttpContentString(), "<?xml version='1.0' encoding='UTF-8'?><QuerySubscriptionDetailResponse><RequestId>") {
		t.Fatalf("XML answer %v %q", ct, mask.Text(resp.GetHttpContentString()))
	}

	p := rawParams("QuerySubscriptionDetail", "n-xml-version", time.Now())
	p.Set("Format", "XML")
	p.Set("Version", "2015-01-01")
	status, body := rawPost(t, addr, p)
	if status != 400 || !strings.HasPrefix(body, "<?xml version='1.0' encoding='UTF-8'?><Error><RequestId>") ||
		!strings.Contains(body, "<Code>InvalidVersion</Code>") ||
		!strings.Contains(body, "<Recommend><![CDATA[https://api.aliyun.com/troubleshoot?q=InvalidVersion&product=Dyplsapi&requestId=") {
		t.Fatalf("XML error: HTTP %d %s", status, body)
	}
}

// QuerySubscriptionDetail leaves GroupId out for a binding without a group
// and shows Extension only when one is set.
func TestDetailOptionalFields(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 2})
	b2 := SeedBinding(2)
	sim.PutBinding(Binding{SubsId: b2.SubsId, PhoneNoA: b2.PhoneNoA, PhoneNoB: b2.PhoneNoB, PhoneNoX: b2.PhoneNoX,
		GroupId: "9", Extension: "0456"})
	for i, want := range []struct{ group, ext string }{{"", ""}, {"9", "0456"}} {
		b := SeedBinding(i + 1)
		p := rawParams("QuerySubscriptionDetail", "n-opt-"+b.SubsId, time.Now())
		p.Set("PoolKey", DefaultPoolKey)
		p.Set("SubsId", b.SubsId)
		p.Set("PhoneNoX", b.PhoneNoX)
		status, body := rawPost(t, addr, p)
		var out struct{ SecretBindDetailDTO map[string]any }
		if err := json.Unmarshal([]byte(body), &out); err != nil || status != 200 {
			t.Fatalf("HTTP %d %s", status, mask.Text(body))
		}
		d := out.SecretBindDetailDTO
		g, hasG := d["GroupId"]
		e, hasE := d["Extension"]
		if hasG != (want.group != "") || hasE != (want.ext != "") ||
			(hasG && g != json.Number(want.group) && g != float64(9)) || (hasE && e != want.ext) {
			t.Errorf("binding %d: GroupId %v (%v) Extension %v (%v)", i+1, g, hasG, e, hasE)
		}
	}
}

func TestNewRejectsBadFaultRule(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Faults: []FaultRule{{Code: "isp.SYSTEM_ERROR"}, {Rate: 2}}}); err == nil ||
		!strings.Contains(err.Error(), "fault rule 1") {
		t.Fatalf("New: %v", err)
	}
	if _, _, _, err := Start(Config{Faults: []FaultRule{{Kind: "explode"}}}, "127.0.0.1:0"); err == nil {
		t.Fatal("Start accepted a bad fault rule")
	}
	if _, err := New(Config{Faults: []FaultRule{{Code: "isp.SYSTEM_ERROR", Count: 1}}}); err != nil {
		t.Fatalf("New with a good rule: %v", err)
	}
}

// Paths outside the API and the control plane answer 404 in JSON.
func TestUnknownPath(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{})
	var e map[string]string
	if s := ctl(t, addr, "GET", "/favicon.ico", "", &e); s != 404 || !strings.Contains(e["error"], "control plane under /_sim/") {
		t.Fatalf("HTTP %d %v", s, e)
	}
	if s := ctl(t, addr, "DELETE", "/_sim/reset", "", &e); s != 405 || e["error"] == "" {
		t.Fatalf("HTTP %d %v", s, e)
	}
}
