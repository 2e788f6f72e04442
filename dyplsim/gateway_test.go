package dyplsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

type gatewayBody struct {
	RequestId, HostId, Code, Message, Recommend string
}

func decodeGateway(t *testing.T, body string) gatewayBody {
	t.Helper()
	var g gatewayBody
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		t.Fatalf("gateway body %q: %v", body, err)
	}
	if g.RequestId == "" || g.HostId != "dyplsapi.aliyuncs.com" ||
		g.Recommend != "https://api.aliyun.com/troubleshoot?q="+g.Code+"&product=Dyplsapi&requestId="+g.RequestId {
		t.Errorf("gateway body shape: %+v", g)
	}
	return g
}

func TestWrongSecretIsSignatureDoesNotMatch(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	c := newClientWith(t, addr, DefaultAccessKeyID, "not-the-secret", 5*time.Second)
	r := updateReq(1, "updateOutId")
	r.OutId = "x"
	_, err := c.UpdateSubscription(r)
	se := serverError(t, err)
	if se.HttpStatus() != 400 || se.ErrorCode() != "SignatureDoesNotMatch" || se.RequestId() == "" || se.HostId() != hostID {
		t.Fatalf("got %v", se)
	}
	// The server's string to sign equals the SDK's, so the SDK blames the secret.
	if se.Recommend() != "InvalidAccessKeySecret: Please check you AccessKeySecret" {
		t.Fatalf("Recommend %q", se.Recommend())
	}
	if !strings.HasPrefix(se.Message(), "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3D") {
		t.Fatalf("Message %q", se.Message())
	}
}

func TestUnknownAccessKeyId(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1, AccessKeys: map[string]string{"ak1": "s1"}})
	c := newClientWith(t, addr, DefaultAccessKeyID, DefaultAccessKeySecret, 5*time.Second)
	r := updateReq(1, "updateOutId")
	r.OutId = "x"
	_, err := c.UpdateSubscription(r)
	if se := serverError(t, err); se.HttpStatus() != 404 || se.ErrorCode() != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("got %v", se)
	}
	// The configured key works.
	if code := mustUpdate(t, newClientWith(t, addr, "ak1", "s1", 5*time.Second), r); code != "OK" {
		t.Fatalf("configured key: %s", code)
	}
}

func TestUnknownAction(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{})
	status, body := rawPost(t, addr, rawParams("BindAxc", "n-unknown-action", time.Now()))
	if g := decodeGateway(t, body); status != 404 || g.Code != "InvalidApi.NotFound" {
		t.Fatalf("HTTP %d %s", status, body)
	}
	// A known action under a version the gateway does not serve is
	// InvalidVersion, not an unknown API.
	p := rawParams("UpdateSubscription", "n-old-version", time.Now())
	p.Set("Version", "2015-01-01")
	if status, body := rawPost(t, addr, p); status != 400 || decodeGateway(t, body).Code != "InvalidVersion" {
		t.Fatalf("wrong Version: HTTP %d %s", status, body)
	}
	if n := sim.Stats().Calls["BindAxc"]["InvalidApi.NotFound"]; n != 1 {
		t.Fatalf("stats: %+v", sim.Stats())
	}
}

func TestReplayedNonce(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	b := SeedBinding(1)
	p := rawParams("UpdateSubscription", "3f1c2a9e0b7d4c6a8e5f1a2b3c4d5e6f", time.Now())
	for k, v := range map[string]string{"PoolKey": b.PoolKey, "SubsId": b.SubsId, "PhoneNoX": b.PhoneNoX,
		"OperateType": "updateExpire", "Expiration": beijingIn(72 * time.Hour)} {
		p.Set(k, v)
	}
	SignParams("POST", p, DefaultAccessKeySecret)
	status, body := rawPostSigned(t, addr, p)
	if status != 200 || !strings.Contains(body, `"Code":"OK"`) {
		t.Fatalf("first: HTTP %d %s", status, body)
	}
	status, body = rawPostSigned(t, addr, p)
	if g := decodeGateway(t, body); status != 400 || g.Code != "SignatureNonceUsed" {
		t.Fatalf("replay: HTTP %d %s", status, body)
	}
}

func TestTimestampChecks(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	for _, tc := range []struct {
		name string
		ts   time.Time
		bad  string
		want string
	}{
		{"Skew", time.Now().Add(-16 * time.Minute), "", "InvalidTimeStamp.Expired"},
		{"Future", time.Now().Add(16 * time.Minute), "", "InvalidTimeStamp.Expired"},
		{"Format", time.Now(), "2025-01-01 00:00:00", "InvalidTimeStamp.Format"},
	} {
		p := rawParams("QuerySubscriptionDetail", "n-"+tc.name, tc.ts)
		if tc.bad != "" {
			p.Set("Timestamp", tc.bad)
		}
		status, body := rawPost(t, addr, p)
		if g := decodeGateway(t, body); status != 400 || g.Code != tc.want {
			t.Errorf("%s: HTTP %d %s", tc.name, status, body)
		}
	}

	// The SDK stamps real time; a simulator clock 20 minutes ahead rejects it.
	_, addr2 := startSim(t, Config{Seed: 1, Clock: func() time.Time { return time.Now().Add(20 * time.Minute) }})
	c := newClient(t, addr2)
	_, err := c.UpdateSubscription(updateReq(1, "updateOutId"))
	if se := serverError(t, err); se.HttpStatus() != 400 || se.ErrorCode() != "InvalidTimeStamp.Expired" {
		t.Fatalf("got %v", se)
	}
}

func TestMissingRequiredParameter(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	c := newClient(t, addr)
	r := updateReq(1, "updateOutId")
	r.OutId = "x"
	r.SubsId = "" // the SDK does not send empty parameters
	_, err := c.UpdateSubscription(r)
	se := serverError(t, err)
	if se.HttpStatus() != 400 || se.ErrorCode() != "MissingSubsId" || se.Message() != "SubsId is mandatory for this action." {
		t.Fatalf("got %v", se)
	}
	q := dyplsapi.CreateQuerySubscriptionDetailRequest()
	q.PoolKey, q.SubsId = DefaultPoolKey, SeedBinding(1).SubsId
	_, err = c.QuerySubscriptionDetail(q)
	if se := serverError(t, err); se.ErrorCode() != "MissingPhoneNoX" {
		t.Fatalf("got %v", se)
	}
}

// GET with the parameters in the query, signed for GET, works as well (for curl).
func TestGetRequest(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	p := rawParams("QuerySubscriptionDetail", "n-get", time.Now())
	p.Set("PoolKey", DefaultPoolKey)
	p.Set("SubsId", SeedBinding(1).SubsId)
	p.Set("PhoneNoX", SeedBinding(1).PhoneNoX)
	SignParams("GET", p, DefaultAccessKeySecret)
	resp, err := httpGet("http://" + addr + "/?" + p.Encode())
	if err != nil || !strings.Contains(resp, `"PhoneNoA":"13800000000"`) {
		t.Fatalf("GET: %v %s", err, resp)
	}
}

// Parameters in a form-encoded body count like query parameters.
func TestFormBody(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 1})
	p := rawParams("UpdateSubscription", "n-form", time.Now())
	p.Set("PoolKey", DefaultPoolKey)
	p.Set("SubsId", SeedBinding(1).SubsId)
	p.Set("PhoneNoX", SeedBinding(1).PhoneNoX)
	p.Set("OperateType", "updateOutId")
	p.Set("OutId", "from body")
	SignParams("POST", p, DefaultAccessKeySecret)
	resp, err := http.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(p.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"Code":"OK"`) {
		t.Fatalf("HTTP %d %s", resp.StatusCode, b)
	}
}

func TestThrottlingGateway(t *testing.T) {
	t.Parallel()
	for _, status := range []int{0, 429} {
		sim, addr := startSim(t, Config{Seed: 1, QPS: 1, Burst: 1, ThrottleStatus: status})
		c := newClient(t, addr)
		r := updateReq(1, "updateOutId")
		r.OutId = "x"
		if code := mustUpdate(t, c, r); code != "OK" {
			t.Fatalf("first call: %s", code)
		}
		r = updateReq(1, "updateOutId")
		r.OutId = "y"
		_, err := c.UpdateSubscription(r)
		se := serverError(t, err)
		want := 400
		if status != 0 {
			want = status
		}
		if se.HttpStatus() != want || se.ErrorCode() != "Throttling.User" || se.RequestId() == "" {
			t.Fatalf("got %v", se)
		}
		h := strings.Join(se.RespHeaders["X-Ratelimit-User-Api"], "")
		if !strings.Contains(h, "TimeLeft:") || !strings.HasPrefix(h, "Limit:1,Remain:0,") {
			t.Fatalf("x-ratelimit-user-api %q", h)
		}
		// Queries have their own bucket.
		detail(t, c, SeedBinding(1).SubsId, SeedBinding(1).PhoneNoX)
		if got, _ := sim.Binding(SeedBinding(1).SubsId); got.OutId != "x" {
			t.Fatalf("throttled call applied: %+v", got)
		}
		if st := sim.Stats(); st.Calls["UpdateSubscription"]["Throttling.User"] != 1 {
			t.Fatalf("stats %+v", st)
		}
	}
}

func TestThrottlingFlowLimit(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 1, QPS: 1, Burst: 1, ThrottleCode: "isv.FLOW_LIMIT", QueryQPS: 1})
	c := newClient(t, addr)
	r := updateReq(1, "updateOutId")
	r.OutId = "x"
	mustUpdate(t, c, r)
	r = updateReq(1, "updateOutId")
	r.OutId = "x"
	resp, err := c.UpdateSubscription(r)
	if err != nil || resp.Code != "isv.FLOW_LIMIT" || resp.GetHttpStatus() != 200 || resp.RequestId == "" {
		t.Fatalf("got %v %+v", err, resp)
	}
	// Raising the quota lets calls through again.
	sim.SetQPS(0, 0)
	if code := mustUpdate(t, c, r); code != "OK" {
		t.Fatalf("after SetQPS: %s", code)
	}
	// The query bucket (1/s) throttles the second query.
	q := dyplsapi.CreateQuerySubscriptionDetailRequest()
	q.PoolKey, q.SubsId, q.PhoneNoX = DefaultPoolKey, SeedBinding(1).SubsId, SeedBinding(1).PhoneNoX
	codes := ""
	for range 2 {
		resp, err := c.QuerySubscriptionDetail(q)
		if err != nil {
			t.Fatal(err)
		}
		codes += resp.Code + " "
	}
	if codes != "OK isv.FLOW_LIMIT " {
		t.Fatalf("queries: %s", codes)
	}
}
