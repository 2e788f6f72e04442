package dypls_test

// These tests drive the real Alibaba Cloud SDK through dypls.Client against
// the simulator over HTTP, one simulator per test, and check how every
// server behaviour the SDK can meet (the rows below name them) and every
// error class comes back as a *dypls.Error. Every error is also
// checked for unmasked phone numbers (see check and asError).

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/mask"
)

const newA = "13800001111" // a PhoneNoA no sample binding holds

// TestConcurrentFirstCalls starts 32 calls at once on a fresh Client, so
// that the pool makes its SDK clients concurrently. The SDK's constructor
// initialises a package-global map (dyplsapi.EndpointMap) without a lock;
// under -race this fails unless Client serialises construction. It is not
// parallel, and it comes first, so that its SDK clients are the first of
// the process: that is when the global is written.
func TestConcurrentFirstCalls(t *testing.T) {
	const n = 32
	sim, addr := startSim(t, dyplsim.Config{Seed: n})
	c := newClient(t, addr)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			if _, err := c.UpdateSubscription(bg, updateOutID(i+1, "x")); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if st := sim.Stats(); st.Applied != n {
		t.Fatalf("stats %+v", st)
	}
}

// TestUpdateOK is the row "200 {"Code":"OK"}".
func TestUpdateOK(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{Seed: 1})
	c := newClient(t, addr)
	res, err := c.UpdateSubscription(bg, updateNoA(1, newA))
	if err != nil {
		t.Fatalf("UpdateSubscription: %v", err)
	}
	if res.RequestID == "" || res.HTTPStatus != 200 || res.Duration <= 0 {
		t.Fatalf("result %+v", res)
	}
	if b := binding(t, sim, 1); b.PhoneNoA != newA {
		t.Fatalf("PhoneNoA = %q, want %q", b.PhoneNoA, newA)
	}
	if st := sim.Stats(); st.Total != 1 || st.Applied != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSDKBehaviourReplies covers the rows where the server answers: 200
// with a business code, an empty or unreadable 2xx, JSON gateway errors of
// every status, and non-JSON error pages. Each case is one call that the
// simulator must count exactly once (the SDK's retry is off) and that must
// leave the binding alone unless the fault applies it.
func TestSDKBehaviourReplies(t *testing.T) {
	t.Parallel()
	html := "<html><body><h1>oops</h1> call 13912345678 for help</body></html>"
	cases := []struct {
		name  string
		fault dyplsim.FaultRule
		want  want
		stat  string // the simulator's label for the call
	}{
		// 200 with a business code: err == nil in the SDK, resp.Code != "OK".
		{"200 isv.FLOW_LIMIT", dyplsim.FaultRule{Kind: "code", Code: "isv.FLOW_LIMIT"},
			want{"isv.FLOW_LIMIT", dypls.Throttled, false, 200, true}, "isv.FLOW_LIMIT"},
		// The provider's own failure may come after it applied the change.
		{"200 isp.SYSTEM_ERROR", dyplsim.FaultRule{Kind: "code", Code: "isp.SYSTEM_ERROR"},
			want{"isp.SYSTEM_ERROR", dypls.Transient, true, 200, true}, "isp.SYSTEM_ERROR"},
		{"200 isv.ACCOUNT_ABNORMAL", dyplsim.FaultRule{Kind: "code", Code: "isv.ACCOUNT_ABNORMAL"},
			want{"isv.ACCOUNT_ABNORMAL", dypls.Systemic, false, 200, true}, "isv.ACCOUNT_ABNORMAL"},
		{"200 unknown isp code", dyplsim.FaultRule{Kind: "code", Code: "isp.SOMETHING_NEW", Message: "call 13912345678"},
			want{"isp.SOMETHING_NEW", dypls.Transient, false, 200, true}, "isp.SOMETHING_NEW"},
		{"200 unknown isv code", dyplsim.FaultRule{Kind: "code", Code: "isv.SOMETHING_NEW"},
			want{"isv.SOMETHING_NEW", dypls.Permanent, false, 200, true}, "isv.SOMETHING_NEW"},

		// 2xx without a Code.
		{"200 empty body", dyplsim.FaultRule{Kind: "empty"},
			want{dypls.CodeEmptyResponse, dypls.Transient, true, 200, false}, dyplsim.StatEmpty},
		{"204 no content", dyplsim.FaultRule{Kind: "http", Status: 204},
			want{dypls.CodeEmptyResponse, dypls.Transient, true, 204, false}, "fault:http204"},
		{"200 {}", dyplsim.FaultRule{Kind: "http", Status: 200, Body: "{}"},
			want{dypls.CodeEmptyResponse, dypls.Transient, true, 200, false}, "fault:http200"},
		// 200 that is not JSON: the SDK's ClientError says 400, the reply was 200.
		{"200 non-JSON", dyplsim.FaultRule{Kind: "http", Status: 200, Body: html},
			want{dypls.CodeUnreadable, dypls.Transient, true, 200, false}, "fault:http200"},

		// JSON gateway errors (*errors.ServerError).
		{"400 Throttling.User", dyplsim.FaultRule{Kind: "gateway", Code: "Throttling.User"},
			want{"Throttling.User", dypls.Throttled, false, 400, true}, "Throttling.User"},
		{"400 business isv.FLOW_LIMIT", dyplsim.FaultRule{Kind: "gateway", Code: "isv.FLOW_LIMIT", Status: 400},
			want{"isv.FLOW_LIMIT", dypls.Throttled, false, 400, true}, "isv.FLOW_LIMIT"},
		{"400 business isv.BIND_CONFLICT", dyplsim.FaultRule{Kind: "gateway", Code: "isv.BIND_CONFLICT", Status: 400},
			want{"isv.BIND_CONFLICT", dypls.Permanent, false, 400, true}, "isv.BIND_CONFLICT"},
		// The SDK signs every attempt with a fresh nonce, so a real replay
		// cannot come from it; the simulator's own TestReplayedNonce
		// (dyplsim/gateway_test.go) replays a nonce on the wire. Here the
		// answer is injected to check its classification.
		{"400 SignatureNonceUsed", dyplsim.FaultRule{Kind: "gateway", Code: "SignatureNonceUsed", Status: 400,
			Message: "Specified signature nonce was used already."},
			want{"SignatureNonceUsed", dypls.Transient, false, 400, true}, "SignatureNonceUsed"},
		{"403 Forbidden.RAM", dyplsim.FaultRule{Kind: "gateway", Code: "Forbidden.RAM"},
			want{"Forbidden.RAM", dypls.Systemic, false, 403, true}, "Forbidden.RAM"},
		{"404 InvalidApi.NotFound", dyplsim.FaultRule{Kind: "gateway", Code: "InvalidApi.NotFound", Status: 404},
			want{"InvalidApi.NotFound", dypls.Systemic, false, 404, true}, "InvalidApi.NotFound"},
		{"500 InternalError", dyplsim.FaultRule{Kind: "gateway", Code: "InternalError"},
			want{"InternalError", dypls.Transient, true, 500, true}, "InternalError"},
		{"503 ServiceUnavailable", dyplsim.FaultRule{Kind: "gateway"},
			want{"ServiceUnavailable", dypls.Transient, true, 503, true}, "ServiceUnavailable"},

		// Non-JSON error pages: ErrorCode() == "", the status decides.
		{"429 non-JSON", dyplsim.FaultRule{Kind: "http", Status: 429},
			want{"HTTP.429", dypls.Throttled, false, 429, false}, "fault:http429"},
		{"502 non-JSON", dyplsim.FaultRule{Kind: "http"},
			want{"HTTP.502", dypls.Transient, true, 502, false}, "fault:http502"},
		{"504 non-JSON", dyplsim.FaultRule{Kind: "http", Status: 504, Body: html},
			want{"HTTP.504", dypls.Transient, true, 504, false}, "fault:http504"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fault.Action = "UpdateSubscription"
			sim, addr := startSim(t, dyplsim.Config{Seed: 1, Faults: []dyplsim.FaultRule{tc.fault}})
			c := newClient(t, addr)
			res, err := c.UpdateSubscription(bg, updateNoA(1, newA))
			e := check(t, err, tc.want)
			if e.Action != "UpdateSubscription" {
				t.Errorf("Action = %q", e.Action)
			}
			if res.HTTPStatus != tc.want.HTTPStatus && !(tc.want.Code == dypls.CodeUnreadable && res.HTTPStatus == 200) {
				t.Errorf("Result.HTTPStatus = %d, want %d", res.HTTPStatus, tc.want.HTTPStatus)
			}
			if e.RequestID != res.RequestID && res.RequestID != "" {
				t.Errorf("Result.RequestID %q != Error.RequestID %q", res.RequestID, e.RequestID)
			}
			if strings.ContainsAny(e.Message, "\r\n") {
				t.Errorf("Message spans lines: %q", e.Message)
			}
			// One attempt only: the SDK's AutoRetry is off.
			if st := sim.Stats(); st.Total != 1 || st.Calls["UpdateSubscription"][tc.stat] != 1 {
				t.Errorf("want exactly one call counted as %q, stats %+v", tc.stat, st)
			}
			if b := binding(t, sim, 1); b.PhoneNoA != dyplsim.SeedBinding(1).PhoneNoA {
				t.Errorf("the failed call changed PhoneNoA to %q", b.PhoneNoA)
			}
		})
	}
}

// TestAmbiguousReplyAfterApply: a 503 or empty reply may hide a success;
// the simulator applies the update before failing, and the error says the
// outcome is ambiguous.
func TestAmbiguousReplyAfterApply(t *testing.T) {
	t.Parallel()
	for _, f := range []dyplsim.FaultRule{
		{Kind: "gateway", Apply: true},
		{Kind: "empty", Apply: true},
		{Kind: "http", Status: 502, Apply: true},
	} {
		t.Run(f.Kind, func(t *testing.T) {
			t.Parallel()
			sim, addr := startSim(t, dyplsim.Config{Seed: 1, Faults: []dyplsim.FaultRule{f}})
			_, err := newClient(t, addr).UpdateSubscription(bg, updateNoA(1, newA))
			if e := asError(t, err); !e.Ambiguous || e.Class != dypls.Transient {
				t.Fatalf("want an ambiguous transient error, got %v", err)
			}
			if b := binding(t, sim, 1); b.PhoneNoA != newA || sim.Stats().Applied != 1 {
				t.Fatalf("fault did not apply: %+v", b)
			}
		})
	}
}

// TestNoSDKRetry: a 503 for one call, then success. The SDK must not retry
// the 503 by itself: the first call returns the 503 and the simulator saw
// exactly one call for it.
func TestNoSDKRetry(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{Seed: 1, Faults: []dyplsim.FaultRule{
		{Action: "UpdateSubscription", Kind: "gateway", Code: "ServiceUnavailable", Status: 503, Count: 1},
	}})
	c := newClient(t, addr)
	_, err := c.UpdateSubscription(bg, updateOutID(1, "first"))
	check(t, err, want{"ServiceUnavailable", dypls.Transient, true, 503, true})
	st := sim.Stats()
	if st.Total != 1 || calls(sim, "UpdateSubscription", "ServiceUnavailable") != 1 || calls(sim, "UpdateSubscription", "OK") != 0 {
		t.Fatalf("after the 503 call: stats %+v (an SDK retry would show a second call)", st)
	}
	if b := binding(t, sim, 1); b.OutId != "" {
		t.Fatalf("OutId = %q after a 503", b.OutId)
	}
	// The next call is the caller's retry, and it succeeds.
	if _, err := c.UpdateSubscription(bg, updateOutID(1, "first")); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.Total != 2 || calls(sim, "UpdateSubscription", "OK") != 1 {
		t.Fatalf("stats %+v", st)
	}
	if b := binding(t, sim, 1); b.OutId != "first" {
		t.Fatalf("OutId = %q", b.OutId)
	}
}

// TestTimeout is the row "server slower than ReadTimeout": a hang longer than
// the call timeout ends the call at the timeout, ambiguous, after one attempt.
func TestTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 800 * time.Millisecond
	sim, addr := startSim(t, dyplsim.Config{Seed: 1, Faults: []dyplsim.FaultRule{{Kind: "hang", Count: 1}}})
	c := newClient(t, addr, withTimeout(timeout))
	start := time.Now()
	res, err := c.UpdateSubscription(bg, updateNoA(1, newA))
	took := time.Since(start)
	check(t, err, want{dypls.CodeTimeout, dypls.Transient, true, 0, false})
	if res.HTTPStatus != 0 {
		t.Errorf("Result.HTTPStatus = %d", res.HTTPStatus)
	}
	if took < timeout-20*time.Millisecond || took > timeout+time.Second {
		t.Errorf("the call returned after %v with a %v timeout", took, timeout)
	}
	waitFor(t, "the hang to end", func() bool { return calls(sim, "UpdateSubscription", dyplsim.StatHang) == 1 })
	if st := sim.Stats(); st.Total != 1 {
		t.Errorf("want one attempt, stats %+v", st)
	}
	if b := binding(t, sim, 1); b.PhoneNoA != dyplsim.SeedBinding(1).PhoneNoA {
		t.Errorf("the timed-out call applied")
	}
	// The timeout is the client's, not stuck from the failed call: a slow
	// but timely answer still succeeds on the same client.
	// (Three tries: a stuck timeout fails them all, a loaded machine
	// rarely more than one.)
	sim.SetFaults([]dyplsim.FaultRule{{Kind: "latency", Delay: 100 * time.Millisecond}})
	var err2 error
	for range 3 {
		if _, err2 = c.UpdateSubscription(bg, updateNoA(1, newA)); err2 == nil {
			break
		}
	}
	if err2 != nil {
		t.Fatalf("after the timeout: %v", err2)
	}
}

// TestConnectionRefused is the row "connection refused": nothing listens, so
// nothing was sent and the outcome is not ambiguous.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, addr, withTimeout(2*time.Second))
	start := time.Now()
	_, err = c.UpdateSubscription(bg, updateNoA(1, newA))
	check(t, err, want{dypls.CodeConnectionRefused, dypls.Transient, false, 0, false})
	if d := time.Since(start); d > time.Second {
		t.Errorf("a refused connection took %v", d)
	}
}

// TestConnectionDropped: the server closes the connection without an
// answer. With drop nothing was applied; with drop_after the update was
// applied first. Both are ambiguous to the client.
func TestConnectionDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, stat string
		applied    bool
	}{
		{"drop", dyplsim.StatDrop, false},
		{"drop_after", dyplsim.StatDropAfter, true},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			sim, addr := startSim(t, dyplsim.Config{Seed: 1, Faults: []dyplsim.FaultRule{
				{Action: "UpdateSubscription", Kind: tc.kind, Count: 1},
			}})
			c := newClient(t, addr)
			_, err := c.UpdateSubscription(bg, updateNoA(1, newA))
			check(t, err, want{dypls.CodeConnectionDropped, dypls.Transient, true, 0, false})
			st := sim.Stats()
			if st.Total != 1 || st.Calls["UpdateSubscription"][tc.stat] != 1 {
				t.Errorf("want one call counted as %s, stats %+v", tc.stat, st)
			}
			got := binding(t, sim, 1).PhoneNoA
			if applied := got == newA; applied != tc.applied || (st.Applied == 1) != tc.applied {
				t.Errorf("PhoneNoA = %q, Applied = %d; want applied = %v", got, st.Applied, tc.applied)
			}
			// The client recovers on a new connection; after drop_after the
			// binding already holds the value, which the simulator accepts.
			if _, err := c.UpdateSubscription(bg, updateNoA(1, newA)); err != nil {
				t.Fatalf("after %s: %v", tc.kind, err)
			}
			if d, _, err := c.QuerySubscriptionDetail(bg, dypls.Binding{PoolKey: dyplsim.DefaultPoolKey,
				SubsId: dyplsim.SeedBinding(1).SubsId, PhoneNoX: dyplsim.SeedBinding(1).PhoneNoX}); err != nil || d.PhoneNoA != newA {
				t.Fatalf("detail %+v, %v", d, err)
			}
		})
	}
}

// TestThrottledByQuota: the simulator's own quota, in both channels: the
// gateway's 400 Throttling.User (also with status 429) and the business
// isv.FLOW_LIMIT in a 200 body.
func TestThrottledByQuota(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  dyplsim.Config
		want want
	}{
		{"gateway", dyplsim.Config{}, want{"Throttling.User", dypls.Throttled, false, 400, true}},
		{"gateway 429", dyplsim.Config{ThrottleStatus: 429}, want{"Throttling.User", dypls.Throttled, false, 429, true}},
		{"business", dyplsim.Config{ThrottleCode: "isv.FLOW_LIMIT"}, want{"isv.FLOW_LIMIT", dypls.Throttled, false, 200, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Seed = 1
			sim, addr := startSim(t, cfg)
			sim.SetQPS(0.01, 1) // one call, then nothing for 100 s
			c := newClient(t, addr)
			if _, err := c.UpdateSubscription(bg, updateOutID(1, "a")); err != nil {
				t.Fatalf("first call: %v", err)
			}
			_, err := c.UpdateSubscription(bg, updateNoA(1, newA))
			check(t, err, tc.want)
			if calls(sim, "UpdateSubscription", tc.want.Code) != 1 {
				t.Errorf("stats %+v", sim.Stats())
			}
			if b := binding(t, sim, 1); b.PhoneNoA == newA {
				t.Error("a throttled call applied")
			}
		})
	}
}

// TestPermanentSubsNotExist: a real isv.SUBS_NOT_EXIST for a SubsId the
// simulator does not know.
func TestPermanentSubsNotExist(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, dyplsim.Config{Seed: 1})
	u := updateNoA(1, newA)
	u.SubsId = "1000000000009999"
	_, err := newClient(t, addr).UpdateSubscription(bg, u)
	e := check(t, err, want{"isv.SUBS_NOT_EXIST", dypls.Permanent, false, 200, true})
	if e.Message == "" {
		t.Error("no Message")
	}
}

// TestPermanentBindConflict: a real isv.BIND_CONFLICT from the binding
// state: the new A number is already bound with the same X elsewhere.
func TestPermanentBindConflict(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{Seed: 1})
	sim.PutBinding(dyplsim.Binding{PhoneNoX: dyplsim.SeedBinding(1).PhoneNoX, PhoneNoA: newA, PhoneNoB: "13700002222"})
	_, err := newClient(t, addr).UpdateSubscription(bg, updateNoA(1, newA))
	check(t, err, want{"isv.BIND_CONFLICT", dypls.Permanent, false, 200, true})
	if b := binding(t, sim, 1); b.PhoneNoA != dyplsim.SeedBinding(1).PhoneNoA {
		t.Errorf("conflicting update applied")
	}
}

// TestSystemicWrongSecret: a wrong secret is SignatureDoesNotMatch, whose
// message carries the server's string-to-sign with every parameter,
// including the phone numbers. The error must show them masked only, and
// never the secret.
func TestSystemicWrongSecret(t *testing.T) {
	t.Parallel()
	const secret = "wrongSecretValue"
	sim, addr := startSim(t, dyplsim.Config{Seed: 1})
	c := newClient(t, addr, func(c *dypls.Config) { c.AccessKeySecret = secret })
	_, err := c.UpdateSubscription(bg, updateNoA(1, newA))
	e := check(t, err, want{"SignatureDoesNotMatch", dypls.Systemic, false, 400, true})
	// The string-to-sign made it into the message, masked.
	for _, masked := range []string{mask.Number(newA), mask.Number(dyplsim.SeedBinding(1).PhoneNoX), "string to sign"} {
		if !strings.Contains(e.Message, masked) {
			t.Errorf("Message lacks %q: %s", masked, e.Message)
		}
	}
	for _, s := range []string{err.Error(), e.Message} {
		for _, secretish := range []string{newA, dyplsim.SeedBinding(1).PhoneNoX, secret, dyplsim.DefaultAccessKeySecret} {
			if strings.Contains(s, secretish) {
				t.Errorf("error shows %q: %s", secretish, s)
			}
		}
	}
	// The SubsId (16 digits) stays whole.
	if !strings.Contains(e.Message, dyplsim.SeedBinding(1).SubsId) {
		t.Errorf("Message lost the SubsId: %s", e.Message)
	}
	if b := binding(t, sim, 1); b.PhoneNoA == newA {
		t.Error("unsigned call applied")
	}
}

// TestSystemicUnknownAccessKey: an AccessKeyId the account does not have.
func TestSystemicUnknownAccessKey(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, dyplsim.Config{Seed: 1})
	c := newClient(t, addr, func(c *dypls.Config) { c.AccessKeyID = "LTAInoSuchKey" })
	_, err := c.UpdateSubscription(bg, updateNoA(1, newA))
	check(t, err, want{"InvalidAccessKeyId.NotFound", dypls.Systemic, false, 404, true})
}

// TestCanceledBeforeCall: a context that has ended stops the call before it
// is made.
func TestCanceledBeforeCall(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{Seed: 1})
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := newClient(t, addr).UpdateSubscription(ctx, updateNoA(1, newA))
	check(t, err, want{dypls.CodeNotCalled, dypls.Transient, false, 0, false})
	if st := sim.Stats(); st.Total != 0 {
		t.Errorf("a canceled call reached the server: %+v", st)
	}
}

// TestConcurrentCalls: one Client shared by 32 goroutines, 50 calls each,
// must be race-free (run with -race) and every call must be applied.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	const goroutines, perG = 32, 50
	sim, addr := startSim(t, dyplsim.Config{Seed: goroutines})
	c := newClient(t, addr)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perG)
	for g := range goroutines {
		wg.Go(func() {
			for n := range perG {
				if _, err := c.UpdateSubscription(bg, updateOutID(g+1, fmt.Sprintf("g%d-%d", g, n))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := sim.Stats()
	if st.Applied != goroutines*perG || st.Total != goroutines*perG || st.Calls["UpdateSubscription"]["OK"] != goroutines*perG {
		t.Fatalf("stats %+v, want %d applied calls", st, goroutines*perG)
	}
	for g := range goroutines {
		if b := binding(t, sim, g+1); b.OutId != fmt.Sprintf("g%d-%d", g, perG-1) {
			t.Errorf("binding %d OutId = %q", g+1, b.OutId)
		}
	}
}

func TestQuerySubscriptionDetail(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, dyplsim.Config{Seed: 2})
	c := newClient(t, addr)
	sb := dyplsim.SeedBinding(2)
	d, res, err := c.QuerySubscriptionDetail(bg, dypls.Binding{PoolKey: sb.PoolKey, SubsId: sb.SubsId, PhoneNoX: sb.PhoneNoX})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequestID == "" || res.HTTPStatus != 200 {
		t.Errorf("result %+v", res)
	}
	if d.SubsId != sb.SubsId || d.PhoneNoA != sb.PhoneNoA || d.PhoneNoB != sb.PhoneNoB || d.PhoneNoX != sb.PhoneNoX ||
		d.Status != 1 || d.ExpireDate == "" || d.GmtCreate == "" || d.CallRestrict != "" {
		t.Errorf("detail %+v, want binding %+v", d, sb)
	}

	// Error: a SubsId that does not exist.
	d, _, err = c.QuerySubscriptionDetail(bg, dypls.Binding{PoolKey: sb.PoolKey, SubsId: "1000000000009999", PhoneNoX: sb.PhoneNoX})
	e := check(t, err, want{"isv.SUBS_NOT_EXIST", dypls.Permanent, false, 200, true})
	if e.Action != "QuerySubscriptionDetail" || d != (dypls.Detail{}) {
		t.Errorf("Action %q, detail %+v", e.Action, d)
	}
}

func TestBindAxb(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{})
	c := newClient(t, addr)
	bj := time.FixedZone("CST", 8*3600)
	b := dypls.Bind{
		PoolKey:    dyplsim.DefaultPoolKey,
		PhoneNoA:   "13600001111",
		PhoneNoB:   "13600002222",
		PhoneNoX:   "17000000099",
		Expiration: time.Now().In(bj).Add(24 * time.Hour).Format(dyplsim.DateLayout),
		OutId:      "order-1",
	}
	bound, res, err := c.BindAxb(bg, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(bound.SubsId) != 16 || bound.SecretNo != b.PhoneNoX || res.RequestID == "" {
		t.Fatalf("bound %+v, result %+v", bound, res)
	}
	sb, ok := sim.Binding(bound.SubsId)
	if !ok || sb.PhoneNoA != b.PhoneNoA || sb.PhoneNoB != b.PhoneNoB || sb.OutId != b.OutId || sb.ExpireDate != b.Expiration {
		t.Fatalf("simulator binding %+v, %v", sb, ok)
	}
	d, _, err := c.QuerySubscriptionDetail(bg, dypls.Binding{PoolKey: b.PoolKey, SubsId: bound.SubsId, PhoneNoX: bound.SecretNo})
	if err != nil || d.PhoneNoA != b.PhoneNoA || d.Status != 1 {
		t.Fatalf("detail %+v, %v", d, err)
	}

	// Error: the same A with the same X again.
	bound, _, err = c.BindAxb(bg, b)
	e := check(t, err, want{"isv.BIND_CONFLICT", dypls.Permanent, false, 200, true})
	if e.Action != "BindAxb" || bound != (dypls.Bound{}) {
		t.Errorf("Action %q, bound %+v", e.Action, bound)
	}
}

// TestHTTPSEndpoint: an https endpoint makes the client speak TLS, which
// the plain-HTTP simulator cannot answer: no API call reaches it.
func TestHTTPSEndpoint(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{Seed: 1})
	c := newClient(t, addr, func(c *dypls.Config) { c.Endpoint = "https://" + addr })
	_, err := c.UpdateSubscription(bg, updateNoA(1, newA))
	e := asError(t, err)
	if e.Code != dypls.CodeTransport || e.Class != dypls.Transient {
		t.Errorf("got %v", err)
	}
	// The cause is shown, not the request URL (parameters, signature).
	if !strings.Contains(e.Message, "HTTPS client") || strings.Contains(e.Message, "Signature") {
		t.Errorf("Message %q", e.Message)
	}
	t.Logf("observed: %v", err)
	if st := sim.Stats(); st.Total != 0 {
		t.Errorf("a TLS call reached the API: %+v", st)
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := dypls.New(dypls.Config{AccessKeyID: "id", AccessKeySecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := c.Config()
	if got.Endpoint != dypls.DefaultEndpoint || !strings.HasPrefix(got.Endpoint, "https://") ||
		got.Region != "cn-hangzhou" || got.Timeout != 10*time.Second || got.ConnectTimeout != 5*time.Second {
		t.Errorf("defaults %+v", got)
	}
	c2, err := dypls.New(dypls.Config{AccessKeyID: "id", AccessKeySecret: "secret", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if ct := c2.Config().ConnectTimeout; ct != 300*time.Millisecond {
		t.Errorf("ConnectTimeout %v with a 300ms Timeout", ct)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-VALUE-never-shown"
	cases := []struct {
		name    string
		cfg     dypls.Config
		wantErr string // substring; "" means valid
	}{
		{"valid default endpoint", dypls.Config{AccessKeyID: "id", AccessKeySecret: secret}, ""},
		{"valid http host:port", dypls.Config{Endpoint: "http://127.0.0.1:8086", AccessKeyID: "id", AccessKeySecret: secret}, ""},
		{"valid trailing slash", dypls.Config{Endpoint: "https://dyplsapi.aliyuncs.com/", AccessKeyID: "id", AccessKeySecret: secret}, ""},
		{"valid upper-case scheme", dypls.Config{Endpoint: "HTTP://127.0.0.1:8086", AccessKeyID: "id", AccessKeySecret: secret}, ""},
		{"no access key id", dypls.Config{AccessKeySecret: secret}, "ALIBABA_CLOUD_ACCESS_KEY_ID"},
		{"no secret", dypls.Config{AccessKeyID: "id"}, "ALIBABA_CLOUD_ACCESS_KEY_SECRET"},
		{"bad scheme", dypls.Config{Endpoint: "ftp://127.0.0.1:8086", AccessKeyID: "id", AccessKeySecret: secret}, "scheme must be http or https"},
		{"path", dypls.Config{Endpoint: "http://127.0.0.1:8086/api", AccessKeyID: "id", AccessKeySecret: secret}, "must not have a path"},
		{"no scheme", dypls.Config{Endpoint: "127.0.0.1:8086", AccessKeyID: "id", AccessKeySecret: secret}, "DYPLS_ENDPOINT"},
		{"bare host", dypls.Config{Endpoint: "dyplsapi.aliyuncs.com", AccessKeyID: "id", AccessKeySecret: secret}, "DYPLS_ENDPOINT"},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		_, nerr := dypls.New(tc.cfg)
		switch {
		case tc.wantErr == "" && (err != nil || nerr != nil):
			t.Errorf("%s: Validate = %v, New = %v; want valid", tc.name, err, nerr)
		case tc.wantErr != "" && (err == nil || nerr == nil):
			t.Errorf("%s: Validate = %v, New = %v; want an error with %q", tc.name, err, nerr, tc.wantErr)
		case tc.wantErr != "":
			if !strings.Contains(err.Error(), tc.wantErr) || nerr.Error() != err.Error() {
				t.Errorf("%s: Validate = %q, New = %q; want %q", tc.name, err, nerr, tc.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error shows the secret: %q", tc.name, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: the error is not one line: %q", tc.name, err)
			}
		}
	}
}

// TestSecurityTokenNeverShown: with STS credentials the SDK sends the
// SecurityToken as a query parameter, so it is in the request URL and in
// the string-to-sign. Neither the SignatureDoesNotMatch echo nor a
// transport error (whose Go text holds the whole URL) may show it.
func TestSecurityTokenNeverShown(t *testing.T) {
	t.Parallel()
	const token = "CAIS+stsTOKEN/secret=value=="
	sim, addr := startSim(t, dyplsim.Config{Seed: 1})
	sts := func(c *dypls.Config) { c.SecurityToken = token }

	// The simulator does not check tokens: an STS call succeeds.
	if _, err := newClient(t, addr, sts).UpdateSubscription(bg, updateOutID(1, "sts")); err != nil {
		t.Fatalf("STS call: %v", err)
	}
	_, sigErr := newClient(t, addr, sts, func(c *dypls.Config) { c.AccessKeySecret = "wrong" }).
		UpdateSubscription(bg, updateNoA(1, newA))
	check(t, sigErr, want{"SignatureDoesNotMatch", dypls.Systemic, false, 400, true})
	_, tlsErr := newClient(t, addr, sts, func(c *dypls.Config) { c.Endpoint = "https://" + addr }).
		UpdateSubscription(bg, updateNoA(1, newA))
	asError(t, tlsErr)
	for _, err := range []error{sigErr, tlsErr} {
		for _, s := range []string{err.Error(), asError(t, err).Message} {
			if strings.Contains(s, "TOKEN") {
				t.Errorf("the SecurityToken is shown: %s", s)
			}
		}
	}
	if st := sim.Stats(); st.Total != 2 {
		t.Errorf("stats %+v", st)
	}
}
