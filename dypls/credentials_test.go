package dypls_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
)

// chainEnv sets the environment so that the SDK's default credentials chain
// finds nothing but the credentials URI uri (none when uri is ""): no
// AccessKey, no OIDC role, no CLI profile or credentials file, no instance
// metadata. Tests that use it cannot run in parallel.
func chainEnv(t *testing.T, uri string) {
	t.Helper()
	for k, v := range dyplsim.CredentialsURIOnlyEnv(uri, t.TempDir()) {
		t.Setenv(k, v)
	}
}

// setSTS changes the simulator's credentials URI over its control plane.
func setSTS(t *testing.T, addr, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/_sim/sts", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /_sim/sts %s: %d", body, resp.StatusCode)
	}
}

// chainClient is a client with no AccessKey configured.
func chainClient(t *testing.T, addr string) *dypls.Client {
	t.Helper()
	return newClient(t, addr, func(c *dypls.Config) { c.AccessKeyID, c.AccessKeySecret = "", "" })
}

// TestChainCredentialsURIRefresh: with no AccessKey, the client takes STS
// credentials from the credentials URI through the SDK's default chain.
// The URI reports an Expiration an hour later than the gateway enforces,
// so the SDK keeps the credentials until the gateway refuses them as
// expired; every such call is made again with fresh credentials and
// succeeds, across several rotations, on every pooled client.
func TestChainCredentialsURIRefresh(t *testing.T) {
	sim, addr := startSim(t, dyplsim.Config{Seed: 4, STSLifetime: 700 * time.Millisecond})
	setSTS(t, addr, `{"ExpirationSkew":"1h"}`)
	chainEnv(t, "http://"+addr+"/_sim/credentials")
	c := chainClient(t, addr)
	src, err := c.CredentialSource()
	if err != nil || src != "default/credential_uri" {
		t.Fatalf("source %q, %v", src, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var calls int
	for g := 1; g <= 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				if _, err := c.UpdateSubscription(bg, updateOutID(g, "r"+string(rune('a'+n%26)))); err != nil {
					t.Errorf("call across a rotation: %v", err)
					return
				}
				mu.Lock()
				calls++
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	st := sim.STS()
	if st.Issued < 4 || st.Expired < 3 {
		t.Errorf("want several rotations each met by an expired answer; sts %+v after %d calls", st, calls)
	}
	if got := sim.Stats().Calls["UpdateSubscription"]["OK"]; got != calls {
		t.Errorf("%d calls answered OK by the simulator, %d succeeded", got, calls)
	}
}

// TestChainCredentialsURIFails: a source that fails gives a systemic
// Credentials.Unavailable error with the source's reason and no secret;
// once it recovers, calls work again.
func TestChainCredentialsURIFails(t *testing.T) {
	_, addr := startSim(t, dyplsim.Config{Seed: 2, STSLifetime: 300 * time.Millisecond})
	setSTS(t, addr, `{"ExpirationSkew":"1h"}`)
	chainEnv(t, "http://"+addr+"/_sim/credentials")
	c := chainClient(t, addr)
	if _, err := c.UpdateSubscription(bg, updateOutID(1, "a")); err != nil {
		t.Fatal(err)
	}
	setSTS(t, addr, `{"Fail":"the role session was revoked","FailStatus":503}`)
	time.Sleep(400 * time.Millisecond) // the credentials expire
	_, err := c.UpdateSubscription(bg, updateOutID(1, "b"))
	e := check(t, err, want{dypls.CodeCredentials, dypls.Systemic, false, 0, false})
	if !strings.Contains(e.Message, "the role session was revoked") || !strings.Contains(e.Message, "default/credential_uri") {
		t.Errorf("message %q lacks the source or its reason", e.Message)
	}
	// Still failing: the same answer without a call.
	_, _, err = c.QuerySubscriptionDetail(bg, dypls.Binding{PoolKey: dyplsim.DefaultPoolKey, SubsId: "1", PhoneNoX: "17000000000"})
	check(t, err, want{dypls.CodeCredentials, dypls.Systemic, false, 0, false})
	setSTS(t, addr, `{"Fail":""}`)
	if _, err := c.UpdateSubscription(bg, updateOutID(1, "c")); err != nil {
		t.Fatalf("after the source recovered: %v", err)
	}
}

// TestChainNoSource: with nothing to find, the source is unknown and a
// call fails as Credentials.Unavailable with the chain's reasons.
func TestChainNoSource(t *testing.T) {
	_, addr := startSim(t, dyplsim.Config{Seed: 1})
	chainEnv(t, "")
	c := chainClient(t, addr)
	if src, err := c.CredentialSource(); err == nil || src != "" {
		t.Fatalf("source %q, %v; want an error", src, err)
	}
	_, err := c.UpdateSubscription(bg, updateOutID(1, "a"))
	e := check(t, err, want{dypls.CodeCredentials, dypls.Systemic, false, 0, false})
	if !strings.Contains(e.Message, "ALIBABA_CLOUD_ACCESS_KEY_ID") {
		t.Errorf("message %q does not say what was tried", e.Message)
	}
}

// TestChainStaticSTSExpires: an STS token in the environment cannot be
// refreshed: the expired answer stands (systemic) after one call, not two.
func TestChainStaticSTSExpires(t *testing.T) {
	sim, addr := startSim(t, dyplsim.Config{Seed: 1, STSLifetime: 200 * time.Millisecond})
	resp, err := http.Get("http://" + addr + "/_sim/credentials")
	if err != nil {
		t.Fatal(err)
	}
	var cc map[string]string
	err = json.NewDecoder(resp.Body).Decode(&cc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	chainEnv(t, "")
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", cc["AccessKeyId"])
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", cc["AccessKeySecret"])
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", cc["SecurityToken"])
	c := chainClient(t, addr)
	if src, err := c.CredentialSource(); err != nil || src != "default/env" {
		t.Fatalf("source %q, %v", src, err)
	}
	if _, err := c.UpdateSubscription(bg, updateOutID(1, "a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	_, err = c.UpdateSubscription(bg, updateOutID(1, "b"))
	e := check(t, err, want{"InvalidSecurityToken.Expired", dypls.Systemic, false, 400, true})
	if strings.Contains(e.Error(), cc["SecurityToken"]) || strings.Contains(e.Error(), cc["AccessKeySecret"]) {
		t.Error("the error shows a secret")
	}
	if got := sim.STS().Expired; got != 1 {
		t.Errorf("%d expired answers, want 1 (no retry with the same credentials)", got)
	}
}

// TestStaticAccessKeyIsNotRefreshed: with a configured STS token, an
// expired answer is final; the source is named static_sts.
func TestStaticAccessKeyIsNotRefreshed(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{Seed: 1, STSLifetime: 100 * time.Millisecond})
	resp, err := http.Get("http://" + addr + "/_sim/credentials")
	if err != nil {
		t.Fatal(err)
	}
	var cc map[string]string
	err = json.NewDecoder(resp.Body).Decode(&cc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, addr, func(c *dypls.Config) {
		c.AccessKeyID, c.AccessKeySecret, c.SecurityToken = cc["AccessKeyId"], cc["AccessKeySecret"], cc["SecurityToken"]
	})
	if src, err := c.CredentialSource(); err != nil || src != "static_sts" {
		t.Fatalf("source %q, %v", src, err)
	}
	time.Sleep(150 * time.Millisecond)
	_, err = c.UpdateSubscription(bg, updateOutID(1, "a"))
	check(t, err, want{"InvalidSecurityToken.Expired", dypls.Systemic, false, 400, true})
	if got := sim.STS().Expired; got != 1 {
		t.Errorf("%d expired answers, want 1", got)
	}
}

func TestConfigCredentialsChoice(t *testing.T) {
	t.Parallel()
	if err := (dypls.Config{}).Validate(); err != nil {
		t.Errorf("no AccessKey (default chain): %v", err)
	}
	err := (dypls.Config{SecurityToken: "tok"}).Validate()
	if err == nil || !strings.Contains(err.Error(), "ALIBABA_CLOUD_SECURITY_TOKEN") || strings.Contains(err.Error(), "tok\"") {
		t.Errorf("token alone: %v", err)
	}
}
