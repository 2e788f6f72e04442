package dyplsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"

	"github.com/dyplsq/dyplsq/mask"
)

// The same table of calls runs through every official client the
// simulator supports: the V1 SDK (typed dyplsapi client, RPC HMAC-SHA1),
// and the generic V2 "Tea" client (darabonba-openapi/v2 CallApi) with its
// default ACS3-HMAC-SHA256 signature and with SignatureAlgorithm "v2"
// (RPC HMAC-SHA1 built by the V2 runtime).

// outcome is what a client saw, in terms common to all clients.
type outcome struct {
	status int            // HTTP status
	code   string         // business Code (HTTP 200) or the gateway error Code
	body   map[string]any // the decoded body (business answer or error)
}

// clientCall is one row's call as a client runner receives it.
type clientCall struct {
	action, version string
	params          map[string]string
	id, secret      string // credentials
	nonce           string // fixed signature nonce, or "" for the client's own
}

// clientRunner sends a call with one client and reports what it saw. ok is
// false when this client cannot express the call (the reason says why).
type clientRunner struct {
	name string
	run  func(t *testing.T, addr string, c clientCall) (outcome, bool, string)
}

// step is one row of the shared table.
type step struct {
	name    string
	action  string
	version string            // "" is APIVersion
	params  map[string]string // "{SubsId}" is replaced by the SubsId BindAxb returned
	secret  string            // "" is DefaultAccessKeySecret
	id      string            // "" is DefaultAccessKeyID
	nonce   string            // a fixed signature nonce ("" lets the client draw one)
	setup   func(*Sim)        // run before the call
	status  int               // the HTTP status wanted
	code    string            // the business Code (status 200) or gateway Code wanted
	check   func(t *testing.T, body map[string]any)
}

// field returns the value at path in a decoded body as a string ("" when
// absent), whatever number type the client's decoder chose.
func field(body map[string]any, path ...string) (string, bool) {
	var v any = body
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[p]; !ok {
			return "", false
		}
	}
	return fmt.Sprint(v), true
}

func wantField(t *testing.T, body map[string]any, want string, path ...string) {
	t.Helper()
	got, ok := field(body, path...)
	if !ok || got != want {
		t.Errorf("%s = %q (present %v), want %q", strings.Join(path, "."), mask.Text(got), ok, mask.Text(want))
	}
}

func clientTable() []step {
	const (
		x  = "17012340001"
		a1 = "13812340001"
		b1 = "13912340001"
		a2 = "13812340002"
		b2 = "13912340002"
	)
	exp1, exp2 := beijingIn(48*time.Hour), beijingIn(72*time.Hour)
	bind := map[string]string{"PoolKey": DefaultPoolKey, "PhoneNoA": a1, "PhoneNoB": b1, "PhoneNoX": x, "Expiration": exp1}
	sub := func(op string, kv ...string) map[string]string {
		m := map[string]string{"PoolKey": DefaultPoolKey, "SubsId": "{SubsId}", "PhoneNoX": x, "OperateType": op}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	query := map[string]string{"PoolKey": DefaultPoolKey, "SubsId": "{SubsId}", "PhoneNoX": x}
	detail := []string{"SecretBindDetailDTO"}
	at := func(name string) []string { return append(append([]string(nil), detail...), name) }
	return []step{
		{name: "BindAxb", action: "BindAxb", params: bind, status: 200, code: "OK",
			check: func(t *testing.T, b map[string]any) { wantField(t, b, x, "SecretBindDTO", "SecretNo") }},
		{name: "detail after bind", action: "QuerySubscriptionDetail", params: query, status: 200, code: "OK",
			check: func(t *testing.T, b map[string]any) {
				wantField(t, b, a1, at("PhoneNoA")...)
				wantField(t, b, "1", at("Status")...)
				if g, ok := field(b, at("GroupId")...); ok {
					t.Errorf("GroupId %q present for a binding without a group", g)
				}
			}},
		{name: "updateNoA", action: "UpdateSubscription", params: sub("updateNoA", "PhoneNoA", a2), status: 200, code: "OK"},
		{name: "updateNoB", action: "UpdateSubscription", params: sub("updateNoB", "PhoneNoB", b2), status: 200, code: "OK"},
		{name: "updateExpire", action: "UpdateSubscription", params: sub("updateExpire", "Expiration", exp2), status: 200, code: "OK"},
		{name: "updateAxgGroup", action: "UpdateSubscription", params: sub("updateAxgGroup", "GroupId", "1234"), status: 200, code: "OK"},
		{name: "updateCallRestrict", action: "UpdateSubscription", params: sub("updateCallRestrict", "CallRestrict", "CONTROL_AX_DISABLE"), status: 200, code: "OK"},
		{name: "updateCallDisplayType", action: "UpdateSubscription", params: sub("updateCallDisplayType", "CallDisplayType", "1"), status: 200, code: "OK"},
		{name: "updateOutId", action: "UpdateSubscription", params: sub("updateOutId", "OutId", "order 42*~/é"), status: 200, code: "OK"},
		{name: "updateIsRecordingEnabled", action: "UpdateSubscription", params: sub("updateIsRecordingEnabled", "IsRecordingEnabled", "true"), status: 200, code: "OK"},
		{name: "detail after updates", action: "QuerySubscriptionDetail", params: query, status: 200, code: "OK",
			check: func(t *testing.T, b map[string]any) {
				wantField(t, b, a2, at("PhoneNoA")...)
				wantField(t, b, b2, at("PhoneNoB")...)
				wantField(t, b, exp2, at("ExpireDate")...)
				wantField(t, b, "1234", at("GroupId")...)
				wantField(t, b, "CONTROL_AX_DISABLE", at("CallRestrict")...)
				wantField(t, b, "true", at("NeedRecord")...)
			}},
		{name: "business error", action: "UpdateSubscription", params: sub("updateExpire", "Expiration", "2020-01-01 00:00:00"),
			status: 200, code: "isv.EXPIRE_DATE_ILLEGAL"},
		{name: "missing SubsId", action: "UpdateSubscription",
			params: map[string]string{"PoolKey": DefaultPoolKey, "PhoneNoX": x, "OperateType": "updateOutId", "OutId": "x"},
			status: 400, code: "MissingSubsId"},
		{name: "wrong Version", action: "QuerySubscriptionDetail", version: "2015-01-01", params: query, status: 400, code: "InvalidVersion"},
		{name: "wrong secret", action: "QuerySubscriptionDetail", params: query, secret: "not-the-secret",
			status: 400, code: "SignatureDoesNotMatch"},
		{name: "unknown AccessKeyId", action: "QuerySubscriptionDetail", params: query, id: "LTAInobody",
			status: 404, code: "InvalidAccessKeyId.NotFound"},
		{name: "first use of a nonce", action: "QuerySubscriptionDetail", params: query, nonce: "5d41402abc4b2a76b9719d911017c592",
			status: 200, code: "OK"},
		{name: "replayed nonce", action: "QuerySubscriptionDetail", params: query, nonce: "5d41402abc4b2a76b9719d911017c592",
			status: 400, code: "SignatureNonceUsed"},
		{name: "within quota", action: "UpdateSubscription", params: sub("updateOutId", "OutId", "q1"),
			setup: func(s *Sim) { s.SetQPS(1, 1) }, status: 200, code: "OK"},
		{name: "over quota", action: "UpdateSubscription", params: sub("updateOutId", "OutId", "q2"),
			status: 400, code: "Throttling.User"},
		{name: "UnbindSubscription", action: "UnbindSubscription",
			params: map[string]string{"PoolKey": DefaultPoolKey, "SubsId": "{SubsId}", "SecretNo": x},
			setup:  func(s *Sim) { s.SetQPS(0, 0) }, status: 200, code: "OK"},
		{name: "detail after unbind", action: "QuerySubscriptionDetail", params: query, status: 200, code: "isv.SUBS_NOT_EXIST"},
	}
}

// runTable plays the table with one client against a fresh simulator.
func runTable(t *testing.T, cr clientRunner) {
	sim, addr := startSim(t, Config{RandSeed: 7})
	subsID := ""
	for _, st := range clientTable() {
		if st.setup != nil {
			st.setup(sim)
		}
		c := clientCall{action: st.action, version: st.version, id: st.id, secret: st.secret, nonce: st.nonce,
			params: make(map[string]string, len(st.params))}
		if c.version == "" {
			c.version = APIVersion
		}
		if c.id == "" {
			c.id = DefaultAccessKeyID
		}
		if c.secret == "" {
			c.secret = DefaultAccessKeySecret
		}
		for k, v := range st.params {
			c.params[k] = strings.ReplaceAll(v, "{SubsId}", subsID)
		}
		out, ok, why := cr.run(t, addr, c)
		if !ok {
			if st.nonce == "" {
				t.Errorf("%s: %s: skipped: %s", cr.name, st.name, why)
			}
			t.Logf("%s: %s: not expressible with this client: %s", cr.name, st.name, why)
			continue
		}
		if out.status != st.status || out.code != st.code {
			t.Errorf("%s: %s: HTTP %d %s, want HTTP %d %s (body %s)", cr.name, st.name, out.status, out.code,
				st.status, st.code, mask.Text(fmt.Sprint(out.body)))
			continue
		}
		if out.status != 200 {
			// Every gateway error names the request in RequestId and in
			// the Recommend address.
			rid, _ := field(out.body, "RequestId")
			rec, _ := field(out.body, "Recommend")
			if rid == "" || !strings.HasSuffix(rec, "&requestId="+rid) {
				t.Errorf("%s: %s: RequestId %q Recommend %q", cr.name, st.name, rid, rec)
			}
		}
		if st.action == "BindAxb" && out.code == "OK" {
			subsID, _ = field(out.body, "SecretBindDTO", "SubsId")
		}
		if st.check != nil {
			st.check(t, out.body)
		}
	}
	if subsID == "" {
		t.Errorf("%s: BindAxb returned no SubsId", cr.name)
	}
}

// v1Client runs a call through the V1 SDK's typed dyplsapi client.
var v1Client = clientRunner{name: "V1 SDK", run: func(t *testing.T, addr string, c clientCall) (outcome, bool, string) {
	if c.nonce != "" {
		return outcome{}, false, "the V1 SDK draws a new SignatureNonce for every call and offers no way to set one"
	}
	cl := newClientWith(t, addr, c.id, c.secret, 5*time.Second)
	var req requests.AcsRequest
	var resp responses.AcsResponse
	var call func() error
	switch c.action {
	case "BindAxb":
		r, out := dyplsapi.CreateBindAxbRequest(), dyplsapi.CreateBindAxbResponse()
		req, resp, call = r, out, func() error { return cl.DoAction(r, out) }
	case "UpdateSubscription":
		r, out := dyplsapi.CreateUpdateSubscriptionRequest(), dyplsapi.CreateUpdateSubscriptionResponse()
		req, resp, call = r, out, func() error { return cl.DoAction(r, out) }
	case "QuerySubscriptionDetail":
		r, out := dyplsapi.CreateQuerySubscriptionDetailRequest(), dyplsapi.CreateQuerySubscriptionDetailResponse()
		req, resp, call = r, out, func() error { return cl.DoAction(r, out) }
	case "UnbindSubscription":
		r, out := dyplsapi.CreateUnbindSubscriptionRequest(), dyplsapi.CreateUnbindSubscriptionResponse()
		req, resp, call = r, out, func() error { return cl.DoAction(r, out) }
	default:
		t.Fatalf("no V1 request type for %s", c.action)
	}
	setV1Params(t, req, c.params)
	req.SetVersion(c.version)
	err := call()
	if err != nil {
		se := serverError(t, err)
		body := map[string]any{}
		if jerr := json.Unmarshal(resp.GetHttpContentBytes(), &body); jerr != nil {
			t.Fatalf("V1 %s: error body is not JSON: %v", c.action, jerr)
		}
		return outcome{status: se.HttpStatus(), code: se.ErrorCode(), body: body}, true, ""
	}
	body := map[string]any{}
	if jerr := json.Unmarshal(resp.GetHttpContentBytes(), &body); jerr != nil {
		t.Fatalf("V1 %s: body is not JSON: %v", c.action, jerr)
	}
	code, _ := field(body, "Code")
	return outcome{status: resp.GetHttpStatus(), code: code, body: body}, true, ""
}}

// setV1Params sets the typed request's fields by their wire names (the
// `name` tags), as a caller setting req.SubsId etc. would.
func setV1Params(t *testing.T, req any, params map[string]string) {
	t.Helper()
	v := reflect.ValueOf(req).Elem()
	typ := v.Type()
	for k, val := range params {
		found := false
		for i := 0; i < typ.NumField(); i++ {
			if typ.Field(i).Tag.Get("name") == k && typ.Field(i).Type.Kind() == reflect.String {
				v.Field(i).SetString(val)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("%T has no string field named %s", req, k)
		}
	}
}

// v2Client returns a runner for the generic V2 client with the given
// SignatureAlgorithm ("" for the SDK's default, ACS3-HMAC-SHA256).
func v2Client(name, algorithm string) clientRunner {
	return clientRunner{name: name, run: func(t *testing.T, addr string, c clientCall) (outcome, bool, string) {
		cfg := &openapi.Config{
			AccessKeyId:     dara.String(c.id),
			AccessKeySecret: dara.String(c.secret),
			Endpoint:        dara.String(addr),
			Protocol:        dara.String("HTTP"),
			RegionId:        dara.String("cn-hangzhou"),
			ReadTimeout:     dara.Int(5000),
			ConnectTimeout:  dara.Int(2000),
		}
		if algorithm != "" {
			cfg.SignatureAlgorithm = dara.String(algorithm)
		}
		cl, err := openapi.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The parameters the generated dyplsapi-20170525 client passes.
		params := &openapi.Params{
			Action: dara.String(c.action), Version: dara.String(c.version), Protocol: dara.String("HTTPS"),
			Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"),
			Style: dara.String("RPC"), ReqBodyType: dara.String("formData"), BodyType: dara.String("json"),
		}
		req := &openapi.OpenApiRequest{Query: map[string]*string{}, Headers: map[string]*string{}}
		for k, v := range c.params {
			req.Query[k] = dara.String(v)
		}
		if c.nonce != "" {
			if algorithm == "v2" {
				req.Query["SignatureNonce"] = dara.String(c.nonce)
			} else {
				req.Headers["x-acs-signature-nonce"] = dara.String(c.nonce)
			}
		}
		res, err := cl.CallApi(params, req, &dara.RuntimeOptions{})
		if err != nil {
			var se *tea.SDKError
			if !errors.As(err, &se) {
				t.Fatalf("%s %s: want *tea.SDKError, got %T: %v", name, c.action, err, err)
			}
			body := map[string]any{}
			if jerr := json.Unmarshal([]byte(tea.StringValue(se.Data)), &body); jerr != nil {
				t.Fatalf("%s %s: error data is not JSON: %v", name, c.action, jerr)
			}
			return outcome{status: tea.IntValue(se.StatusCode), code: tea.StringValue(se.Code), body: body}, true, ""
		}
		body, _ := res["body"].(map[string]any)
		code, _ := field(body, "Code")
		// The runtime round-trips the result through JSON: the status
		// comes back as whatever number type its decoder chose.
		status, err := strconv.Atoi(fmt.Sprint(res["statusCode"]))
		if err != nil {
			t.Fatalf("%s %s: statusCode %v", name, c.action, res["statusCode"])
		}
		return outcome{status: status, code: code, body: body}, true, ""
	}}
}

func TestClientsV1SDK(t *testing.T) {
	t.Parallel()
	runTable(t, v1Client)
}

func TestClientsV2DefaultACS3(t *testing.T) {
	t.Parallel()
	runTable(t, v2Client("V2 client (ACS3-HMAC-SHA256)", ""))
}

func TestClientsV2SignatureV2(t *testing.T) {
	t.Parallel()
	runTable(t, v2Client("V2 client (SignatureAlgorithm v2)", "v2"))
}
