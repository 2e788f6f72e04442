package dyplsim

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

// startSim starts a simulator on a free loopback port for the test.
func startSim(tb testing.TB, cfg Config) (*Sim, string) {
	tb.Helper()
	sim, srv, addr, err := Start(cfg, "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return sim, addr
}

// clientMu serialises SDK client construction.
var clientMu sync.Mutex

// newClient returns an SDK client for addr with the default AccessKey.
func newClient(tb testing.TB, addr string) *dyplsapi.Client {
	tb.Helper()
	return newClientWith(tb, addr, DefaultAccessKeyID, DefaultAccessKeySecret, 5*time.Second)
}

// newClientWith returns an SDK client with the given credentials and read
// timeout, set once at construction.
func newClientWith(tb testing.TB, addr, id, secret string, readTimeout time.Duration) *dyplsapi.Client {
	tb.Helper()
	// NewClientWithOptions lazily initialises the package-global
	// dyplsapi.EndpointMap without a lock: concurrent first calls race.
	clientMu.Lock()
	c, err := dyplsapi.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(), credentials.NewAccessKeyCredential(id, secret))
	clientMu.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
	c.Domain = addr
	c.SetReadTimeout(readTimeout)
	c.SetConnectTimeout(2 * time.Second)
	tb.Cleanup(c.Shutdown)
	return c
}

// updateReq returns an UpdateSubscription request for sample binding i.
func updateReq(i int, op string) *dyplsapi.UpdateSubscriptionRequest {
	b := SeedBinding(i)
	r := dyplsapi.CreateUpdateSubscriptionRequest()
	r.PoolKey = b.PoolKey
	r.SubsId = b.SubsId
	r.PhoneNoX = b.PhoneNoX
	r.OperateType = op
	return r
}

// mustUpdate sends r and returns the business Code; a transport or gateway
// error fails the test.
func mustUpdate(tb testing.TB, c *dyplsapi.Client, r *dyplsapi.UpdateSubscriptionRequest) string {
	tb.Helper()
	resp, err := c.UpdateSubscription(r)
	if err != nil {
		tb.Fatalf("UpdateSubscription %s: %v", r.OperateType, err)
	}
	if resp.RequestId == "" {
		tb.Errorf("UpdateSubscription %s: empty RequestId", r.OperateType)
	}
	return resp.Code
}

// detail queries binding subsID/x and fails the test unless the answer is OK.
func detail(tb testing.TB, c *dyplsapi.Client, subsID, x string) dyplsapi.SecretBindDetailDTO {
	tb.Helper()
	r := dyplsapi.CreateQuerySubscriptionDetailRequest()
	r.PoolKey = DefaultPoolKey
	r.SubsId = subsID
	r.PhoneNoX = x
	resp, err := c.QuerySubscriptionDetail(r)
	if err != nil {
		tb.Fatalf("QuerySubscriptionDetail: %v", err)
	}
	if resp.Code != "OK" {
		tb.Fatalf("QuerySubscriptionDetail: Code %s (%s)", resp.Code, resp.Message)
	}
	return resp.SecretBindDetailDTO
}

// serverError unwraps err as an SDK ServerError or fails the test.
func serverError(tb testing.TB, err error) *sdkerrors.ServerError {
	tb.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		tb.Fatalf("want *errors.ServerError, got %T: %v", err, err)
	}
	return se
}

// beijingIn formats now+d as an Expiration.
func beijingIn(d time.Duration) string {
	return time.Now().Add(d).In(beijing).Format(DateLayout)
}

// rawParams returns the common parameters the SDK would send for action,
// unsigned, with a fixed nonce.
func rawParams(action, nonce string, ts time.Time) url.Values {
	v := url.Values{}
	v.Set("Action", action)
	v.Set("Version", APIVersion)
	v.Set("Format", "JSON")
	v.Set("RegionId", "cn-hangzhou")
	v.Set("AccessKeyId", DefaultAccessKeyID)
	v.Set("SignatureMethod", "HMAC-SHA1")
	v.Set("SignatureVersion", "1.0")
	v.Set("SignatureType", "")
	v.Set("SignatureNonce", nonce)
	v.Set("Timestamp", ts.UTC().Format(TimestampLayout))
	return v
}

// rawPost signs params with the default secret and POSTs them as the SDK
// does; it returns the status and body.
func rawPost(tb testing.TB, addr string, params url.Values) (int, string) {
	tb.Helper()
	SignParams(http.MethodPost, params, DefaultAccessKeySecret)
	return rawPostSigned(tb, addr, params)
}

func rawPostSigned(tb testing.TB, addr string, params url.Values) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/?"+params.Encode(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond for up to 5 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// httpGet returns the body of a GET.
func httpGet(u string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
