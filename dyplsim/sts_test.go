package dyplsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

// stsClient returns an SDK client signing with the given credentials
// provider.
func stsClient(tb testing.TB, addr string, p credentials.CredentialsProvider) *dyplsapi.Client {
	tb.Helper()
	clientMu.Lock()
	c, err := dyplsapi.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(), p)
	clientMu.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
	c.Domain = addr
	c.SetReadTimeout(5 * time.Second)
	tb.Cleanup(c.Shutdown)
	return c
}

// gatewayCode returns the code of a gateway error, or "OK" for none.
func gatewayCode(tb testing.TB, err error) string {
	tb.Helper()
	if err == nil {
		return "OK"
	}
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		tb.Fatalf("want a gateway error, got %T: %v", err, err)
	}
	return se.ErrorCode()
}

// fixedProvider hands out the same credentials on every request.
type fixedProvider struct{ cc credentials.Credentials }

func (p fixedProvider) GetCredentials() (*credentials.Credentials, error) { c := p.cc; return &c, nil }
func (p fixedProvider) GetProviderName() string                           { return "fixed" }

// TestCredentialsURIWithTheSDKProvider: the SDK's own URI provider reads
// the simulator's credentials URI, the gateway accepts them, and answers an
// expired, a mismatched and a missing token as the gateway does.
func TestCredentialsURIWithTheSDKProvider(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	sim, addr := startSim(t, Config{Seed: 2, STSLifetime: 30 * time.Second, Clock: clock})

	uri, err := credentials.NewURLCredentialsProviderBuilderBuilder().WithUrl("http://" + addr + "/_sim/credentials").Build()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := uri.GetCredentials()
	if err != nil {
		t.Fatalf("the SDK's URI provider: %v", err)
	}
	if !strings.HasPrefix(cc.AccessKeyId, "STS.") || cc.SecurityToken == "" || cc.AccessKeySecret == "" {
		t.Fatalf("credentials %q with token %t", cc.AccessKeyId, cc.SecurityToken != "")
	}
	if code := mustUpdate(t, stsClient(t, addr, uri), outIDReq(1, "sts")); code != "OK" {
		t.Fatalf("STS call: %s", code)
	}

	// A third of the life left: the URI hands out a new set.
	advance(21 * time.Second)
	cc2, err := credentials.NewURLCredentialsProviderBuilderBuilder().WithUrl("http://" + addr + "/_sim/credentials").Build()
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := cc2.GetCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessKeyId == cc.AccessKeyId || fresh.SecurityToken == cc.SecurityToken {
		t.Fatal("no rotation with a third of the lifetime left")
	}

	// The first set expires: answered as the gateway does.
	advance(10 * time.Second)
	old := fixedProvider{*cc}
	_, err = stsClient(t, addr, old).UpdateSubscription(outIDReq(1, "sts"))
	if got := gatewayCode(t, err); got != "InvalidSecurityToken.Expired" {
		t.Errorf("expired token: %s", got)
	}
	mismatch := fixedProvider{*fresh}
	mismatch.cc.SecurityToken = cc.SecurityToken
	_, err = stsClient(t, addr, mismatch).UpdateSubscription(outIDReq(1, "sts"))
	if got := gatewayCode(t, err); got != "InvalidSecurityToken.MismatchWithAccessKey" {
		t.Errorf("mismatched token: %s", got)
	}
	none := fixedProvider{*fresh}
	none.cc.SecurityToken = ""
	_, err = stsClient(t, addr, none).UpdateSubscription(outIDReq(1, "sts"))
	if got := gatewayCode(t, err); got != "InvalidSecurityToken.Malformed" {
		t.Errorf("no token: %s", got)
	}
	_, err = stsClient(t, addr, fixedProvider{*fresh}).UpdateSubscription(outIDReq(2, "sts"))
	if got := gatewayCode(t, err); got != "OK" {
		t.Errorf("fresh credentials: %s", got)
	}
	// Forgotten an hour after expiry.
	advance(2 * time.Hour)
	_ = mustSTSFetch(t, addr) // prunes
	_, err = stsClient(t, addr, old).UpdateSubscription(outIDReq(1, "sts"))
	if got := gatewayCode(t, err); got != "InvalidAccessKeyId.NotFound" {
		t.Errorf("long expired: %s", got)
	}
	if st := sim.STS(); st.Issued < 3 || st.Expired != 1 || st.Served < 3 {
		t.Errorf("sts state %+v", st)
	}
}

func mustSTSFetch(tb testing.TB, addr string) map[string]string {
	tb.Helper()
	resp, err := http.Get("http://" + addr + "/_sim/credentials")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestCredentialsURIControl: PUT /_sim/sts sets the skew of the reported
// Expiration and makes the URI fail; GET /_sim/sts shows no secret.
func TestCredentialsURIControl(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{})
	put := func(body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/_sim/sts", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("PUT %s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	put(`{"Lifetime":"10s","ExpirationSkew":"1h"}`, 200)
	got := mustSTSFetch(t, addr)
	exp, err := time.Parse(TimestampLayout, got["Expiration"])
	if err != nil || got["Code"] != "Success" {
		t.Fatalf("credentials %v: %v", got["Expiration"], err)
	}
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("reported Expiration %s from now, want 1h10s", d)
	}
	put(`{"Fail":"role session revoked","FailStatus":503}`, 200)
	uri, _ := credentials.NewURLCredentialsProviderBuilderBuilder().WithUrl("http://" + addr + "/_sim/credentials").Build()
	if _, err := uri.GetCredentials(); err == nil || !strings.Contains(err.Error(), "role session revoked") {
		t.Errorf("failing URI: %v", err)
	}
	put(`{"Lifetime":"0s"}`, 400)
	put(`{"Lifetime":"1s","Bogus":1}`, 400)
	put(`{"Fail":""}`, 200)
	if _, err := uri.GetCredentials(); err != nil {
		t.Errorf("recovered URI: %v", err)
	}
	st := sim.STS()
	if st.Refused != 1 || st.Served != 2 || time.Duration(st.Lifetime) != 10*time.Second || st.Fail != "" {
		t.Errorf("state %+v", st)
	}
	resp, err := http.Get("http://" + addr + "/_sim/sts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AccessKeySecret", "SecurityToken", "AccessKeyId"} {
		if _, ok := raw[k]; ok {
			t.Errorf("GET /_sim/sts shows %s", k)
		}
	}
}
