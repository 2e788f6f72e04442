package dyplsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

func outIDReq(i int, outID string) *dyplsapi.UpdateSubscriptionRequest {
	r := updateReq(i, "updateOutId")
	r.OutId = outID
	return r
}

func outIDOf(t *testing.T, sim *Sim, i int) string {
	t.Helper()
	b, ok := sim.Binding(SeedBinding(i).SubsId)
	if !ok {
		t.Fatalf("binding %d missing", i)
	}
	return b.OutId
}

func TestFaultKinds(t *testing.T) {
	t.Parallel()

	t.Run("Code", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Code: "isp.SYSTEM_ERROR"}}})
		resp, err := newClient(t, addr).UpdateSubscription(outIDReq(1, "a"))
		if err != nil || resp.Code != "isp.SYSTEM_ERROR" || resp.Message == "" || resp.GetHttpStatus() != 200 {
			t.Fatalf("got %v %+v", err, resp)
		}
		if outIDOf(t, sim, 1) != "" {
			t.Fatal("code fault applied the update")
		}
	})

	t.Run("CodeApply", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "code", Code: "isp.DAO_EXCEPTION", Apply: true}}})
		resp, err := newClient(t, addr).UpdateSubscription(outIDReq(1, "a"))
		if err != nil || resp.Code != "isp.DAO_EXCEPTION" {
			t.Fatalf("got %v %+v", err, resp)
		}
		if outIDOf(t, sim, 1) != "a" || sim.Stats().Applied != 1 {
			t.Fatal("Apply fault did not apply")
		}
	})

	t.Run("Gateway", func(t *testing.T) {
		t.Parallel()
		_, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "gateway"}, {Kind: "gateway", Code: "InternalError"}}})
		c := newClient(t, addr)
		_, err := c.UpdateSubscription(outIDReq(1, "a"))
		if se := serverError(t, err); se.HttpStatus() != 503 || se.ErrorCode() != "ServiceUnavailable" || se.RequestId() == "" {
			t.Fatalf("got %v", se)
		}
	})

	t.Run("GatewayCustom", func(t *testing.T) {
		t.Parallel()
		_, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "gateway", Code: "isv.FLOW_LIMIT", Status: 400, Message: "slow down"}}})
		_, err := newClient(t, addr).UpdateSubscription(outIDReq(1, "a"))
		if se := serverError(t, err); se.HttpStatus() != 400 || se.ErrorCode() != "isv.FLOW_LIMIT" || se.Message() != "slow down" {
			t.Fatalf("got %v", se)
		}
	})

	t.Run("NonJSON502", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "http"}}})
		_, err := newClient(t, addr).UpdateSubscription(outIDReq(1, "a"))
		se := serverError(t, err)
		if se.HttpStatus() != 502 || se.ErrorCode() != "" || !strings.Contains(se.Message(), "502 Bad Gateway") {
			t.Fatalf("got %v", se)
		}
		if n := sim.Stats().Calls["UpdateSubscription"]["fault:http502"]; n != 1 {
			t.Fatalf("stats %+v", sim.Stats())
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		_, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "empty"}}})
		resp, err := newClient(t, addr).UpdateSubscription(outIDReq(1, "a"))
		if err != nil || resp.Code != "" || resp.GetHttpStatus() != 200 {
			t.Fatalf("got %v %+v", err, resp)
		}
	})

	t.Run("Hang", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "hang"}}})
		c := newClientWith(t, addr, DefaultAccessKeyID, DefaultAccessKeySecret, 300*time.Millisecond)
		start := time.Now()
		_, err := c.UpdateSubscription(outIDReq(1, "a"))
		var ue *url.Error
		if !errors.As(err, &ue) || !ue.Timeout() {
			t.Fatalf("want a *url.Error timeout, got %T %v", err, err)
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
			t.Fatalf("returned after %v", d)
		}
		waitFor(t, "hang recorded", func() bool { return sim.Stats().Calls["UpdateSubscription"][StatHang] == 1 })
		if outIDOf(t, sim, 1) != "" {
			t.Fatal("hung call applied")
		}
	})

	t.Run("HangReleasedByShutdown", func(t *testing.T) {
		t.Parallel()
		sim, srv, addr, err := Start(Config{Seed: 1, Faults: []FaultRule{{Kind: "hang"}}}, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		c := newClient(t, addr)
		done := make(chan error, 1)
		go func() {
			_, err := c.UpdateSubscription(outIDReq(1, "a"))
			done <- err
		}()
		waitFor(t, "the call to hang", func() bool { return sim.Faults()[0].Fired == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Shutdown took %v", d)
		}
		if err := <-done; err == nil {
			t.Fatal("hung call succeeded")
		}
	})

	t.Run("HangThenAnswer", func(t *testing.T) {
		t.Parallel()
		_, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "hang", Delay: 50 * time.Millisecond}}})
		if code := mustUpdate(t, newClient(t, addr), outIDReq(1, "a")); code != "OK" {
			t.Fatalf("code %s", code)
		}
	})

	t.Run("Drop", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "drop", Count: 1}}})
		c := newClient(t, addr)
		_, err := c.UpdateSubscription(outIDReq(1, "a"))
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Fatalf("want *url.Error, got %T %v", err, err)
		}
		if outIDOf(t, sim, 1) != "" {
			t.Fatal("dropped call applied")
		}
		// The same client recovers on a new connection.
		if code := mustUpdate(t, c, outIDReq(1, "b")); code != "OK" || outIDOf(t, sim, 1) != "b" {
			t.Fatalf("after drop: %s", code)
		}
	})

	t.Run("DropAfter", func(t *testing.T) {
		t.Parallel()
		sim, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "drop_after", OperateType: "updateNoB"}}})
		c := newClient(t, addr)
		r := updateReq(1, "updateNoB")
		r.PhoneNoB = "13711112222"
		_, err := c.UpdateSubscription(r)
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Fatalf("want *url.Error, got %T %v", err, err)
		}
		if d := detail(t, c, SeedBinding(1).SubsId, SeedBinding(1).PhoneNoX); d.PhoneNoB != "13711112222" {
			t.Fatalf("drop_after did not apply: %+v", d)
		}
		st := sim.Stats()
		if st.Applied != 1 || st.Calls["UpdateSubscription"][StatDropAfter] != 1 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("Latency", func(t *testing.T) {
		t.Parallel()
		_, addr := startSim(t, Config{Seed: 1, Faults: []FaultRule{{Kind: "latency", Delay: 150 * time.Millisecond}}})
		start := time.Now()
		if code := mustUpdate(t, newClient(t, addr), outIDReq(1, "a")); code != "OK" {
			t.Fatalf("code %s", code)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("answered after %v", d)
		}
	})

	t.Run("ConfigLatency", func(t *testing.T) {
		t.Parallel()
		_, addr := startSim(t, Config{Seed: 1, Latency: 100 * time.Millisecond, Jitter: 50 * time.Millisecond})
		start := time.Now()
		mustUpdate(t, newClient(t, addr), outIDReq(1, "a"))
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Fatalf("answered after %v", d)
		}
	})
}

func TestFaultTargetingCountAfter(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 3})
	c := newClient(t, addr)
	target := SeedBinding(2).SubsId
	// Fail twice then succeed, for binding 2 only.
	sim.SetFaults([]FaultRule{{Action: "UpdateSubscription", SubsId: target, Code: "isp.SYSTEM_ERROR", Count: 2}})

	codes := func(i, n int) string {
		var out []string
		for range n {
			out = append(out, mustUpdate(t, c, outIDReq(i, "v")))
		}
		return strings.Join(out, ",")
	}
	if got := codes(1, 2); got != "OK,OK" {
		t.Fatalf("other binding: %s", got)
	}
	if got := codes(2, 3); got != "isp.SYSTEM_ERROR,isp.SYSTEM_ERROR,OK" {
		t.Fatalf("target: %s", got)
	}
	// Queries on the target are not UpdateSubscription.
	detail(t, c, target, SeedBinding(2).PhoneNoX)
	fs := sim.Faults()
	if len(fs) != 1 || fs[0].Fired != 2 || !fs[0].Spent || fs[0].Seen != 2 {
		t.Fatalf("fault state %+v", fs)
	}

	// Succeed once, then fail (After 1), on one OperateType only.
	sim.SetFaults([]FaultRule{{OperateType: "updateOutId", After: 1, Kind: "gateway", Code: "InternalError"}})
	if got := mustUpdate(t, c, outIDReq(3, "w")); got != "OK" {
		t.Fatalf("first: %s", got)
	}
	_, err := c.UpdateSubscription(outIDReq(3, "w"))
	if se := serverError(t, err); se.HttpStatus() != 500 || se.ErrorCode() != "InternalError" {
		t.Fatalf("second: %v", se)
	}
	r := updateReq(3, "updateNoB")
	r.PhoneNoB = "13755556666"
	if got := mustUpdate(t, c, r); got != "OK" {
		t.Fatalf("other OperateType: %s", got)
	}

	// A scripted sequence from several rules: drop, then 503, then OK.
	sim.SetFaults(nil)
	sim.AddFault(FaultRule{SubsId: target, Kind: "drop", Count: 1})
	sim.AddFault(FaultRule{SubsId: target, Kind: "gateway", Count: 1})
	var seq []string
	for range 3 {
		_, err := c.UpdateSubscription(outIDReq(2, "z"))
		var se *sdkerrors.ServerError
		switch {
		case err == nil:
			seq = append(seq, "ok")
		case errors.As(err, &se):
			seq = append(seq, se.ErrorCode())
		default:
			seq = append(seq, "transport")
		}
	}
	if got := strings.Join(seq, ","); got != "transport,ServiceUnavailable,ok" {
		t.Fatalf("sequence %s", got)
	}
}

func TestFaultRate(t *testing.T) {
	t.Parallel()
	run := func(seed int64) string {
		sim, addr := startSim(t, Config{Seed: 1, RandSeed: seed, Faults: []FaultRule{{Code: "isp.SYSTEM_ERROR", Rate: 0.5}}})
		c := newClient(t, addr)
		var b strings.Builder
		for range 40 {
			if mustUpdate(t, c, outIDReq(1, "r")) == "OK" {
				b.WriteByte('.')
			} else {
				b.WriteByte('x')
			}
		}
		_ = sim
		return b.String()
	}
	a, b := run(11), run(11)
	if a != b {
		t.Fatalf("same RandSeed, different fault sequence:\n%s\n%s", a, b)
	}
	if n := strings.Count(a, "x"); n < 8 || n > 32 {
		t.Fatalf("rate 0.5 hit %d of 40: %s", n, a)
	}
}

func TestFaultRuleJSON(t *testing.T) {
	t.Parallel()
	in := `[{"Action":"UpdateSubscription","Kind":"hang","Delay":"2s","Count":1},{"Code":"isp.SYSTEM_ERROR","Rate":0.05,"After":3,"Delay":1500000000}]`
	var rules []FaultRule
	if err := json.Unmarshal([]byte(in), &rules); err != nil {
		t.Fatal(err)
	}
	if rules[0].Delay != 2*time.Second || rules[0].Kind != "hang" || rules[1].Delay != 1500*time.Millisecond || rules[1].After != 3 {
		t.Fatalf("%+v", rules)
	}
	out, _ := json.Marshal(rules[0])
	if string(out) != `{"Action":"UpdateSubscription","Kind":"hang","Delay":"2s","Count":1}` {
		t.Fatalf("marshal %s", out)
	}
	for _, bad := range []string{`{"Kind":"explode"}`, `{"Delay":"soon"}`, `{"Typo":1}`} {
		var r FaultRule
		if err := json.Unmarshal([]byte(bad), &r); err == nil && r.Validate() == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	st, _ := json.Marshal(FaultState{FaultRule: rules[0], Seen: 2, Fired: 1, Spent: true})
	if string(st) != `{"Action":"UpdateSubscription","Kind":"hang","Delay":"2s","Count":1,"Seen":2,"Fired":1,"Spent":true}` {
		t.Fatalf("state %s", st)
	}
}

func TestFaultTargetingParams(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 2})
	c := newClient(t, addr)
	sim.SetFaults([]FaultRule{{Params: map[string]string{"OutId": "old"}, Code: "isp.SYSTEM_ERROR", Count: 1}})
	if got := mustUpdate(t, c, outIDReq(1, "new")); got != "OK" {
		t.Fatalf("other value: %s", got)
	}
	if got := mustUpdate(t, c, outIDReq(1, "old")); got != "isp.SYSTEM_ERROR" {
		t.Fatalf("targeted value: %s", got)
	}
	if got := mustUpdate(t, c, outIDReq(1, "old")); got != "OK" {
		t.Fatalf("after Count: %s", got)
	}
}

func TestFaultParamsJSON(t *testing.T) {
	var r FaultRule
	if err := json.Unmarshal([]byte(`{"Params":{"OutId":"old"},"Code":"isp.SYSTEM_ERROR"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Params["OutId"] != "old" {
		t.Fatalf("%+v", r)
	}
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"Params":{"OutId":"old"}`) {
		t.Fatalf("%s", b)
	}
}
