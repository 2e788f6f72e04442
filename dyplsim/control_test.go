package dyplsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

// ctl sends a control-plane request and decodes the JSON answer into out
// (when not nil); it returns the status.
func ctl(t *testing.T, addr, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json;charset=utf-8" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func TestControlPlane(t *testing.T) {
	t.Parallel()
	_, addr := startSim(t, Config{Seed: 2, RandSeed: 5})
	var health map[string]string
	if s := ctl(t, addr, "GET", "/_sim/health", "", &health); s != 200 || health["Status"] != "ok" {
		t.Fatalf("health %d %v", s, health)
	}

	// Bindings.
	var all []Binding
	if s := ctl(t, addr, "GET", "/_sim/bindings", "", &all); s != 200 || len(all) != 2 || all[0].SubsId != "1000000000000001" || all[1].PhoneNoX != "17000000001" || all[0].Status != 1 {
		t.Fatalf("GET bindings %d %+v", s, all)
	}
	var one Binding
	if s := ctl(t, addr, "GET", "/_sim/bindings?SubsId=1000000000000002", "", &one); s != 200 || one.PhoneNoA != "13800000001" {
		t.Fatalf("GET one %d %+v", s, one)
	}
	var e map[string]string
	if s := ctl(t, addr, "GET", "/_sim/bindings?SubsId=1", "", &e); s != 404 || e["error"] == "" {
		t.Fatalf("GET unknown %d %v", s, e)
	}
	var created Binding
	if s := ctl(t, addr, "POST", "/_sim/bindings", `{"SubsId":"5","PoolKey":"FC_OTHER","PhoneNoX":"17199990000","PhoneNoA":"13800000009","ExpireDate":"2099-01-01 00:00:00"}`, &created); s != 200 ||
		created.SubsId != "5" || created.GmtCreate == "" || created.Status != 1 {
		t.Fatalf("POST one %d %+v", s, created)
	}
	var many []Binding
	if s := ctl(t, addr, "POST", "/_sim/bindings", `[{"PhoneNoA":"13800000010"},{"PhoneNoA":"13800000011","PhoneNoX":"17012345678"}]`, &many); s != 200 ||
		len(many) != 2 || many[0].SubsId == "" || many[0].PoolKey != DefaultPoolKey || many[1].PhoneNoX != "17012345678" {
		t.Fatalf("POST many %d %+v", s, many)
	}
	for _, bad := range []string{`{"SubsId":"6","ExpireDate":"tomorrow"}`, `{"Unknown":1}`, `not json`, ``} {
		if s := ctl(t, addr, "POST", "/_sim/bindings", bad, &e); s != 400 || e["error"] == "" {
			t.Errorf("POST %q: %d %v", bad, s, e)
		}
	}
	// The posted pool and X now exist for the API.
	c := newClient(t, addr)
	q := dyplsapi.CreateQuerySubscriptionDetailRequest()
	q.PoolKey, q.SubsId, q.PhoneNoX = "FC_OTHER", "5", "17199990000"
	if resp, err := c.QuerySubscriptionDetail(q); err != nil || resp.Code != "OK" || resp.SecretBindDetailDTO.ExpireDate != "2099-01-01 00:00:00" {
		t.Fatalf("query posted binding: %v %+v", err, resp)
	}
	if s := ctl(t, addr, "DELETE", "/_sim/bindings?SubsId=5", "", nil); s != 200 {
		t.Fatalf("DELETE %d", s)
	}

	// Faults.
	var fs []FaultState
	if s := ctl(t, addr, "PUT", "/_sim/faults", `[{"Action":"UpdateSubscription","SubsId":"1000000000000001","Code":"isp.SYSTEM_ERROR","Count":1},{"Kind":"latency","Delay":"1ms"}]`, &fs); s != 200 || len(fs) != 2 || fs[1].Delay != time.Millisecond {
		t.Fatalf("PUT faults %d %+v", s, fs)
	}
	if s := ctl(t, addr, "PUT", "/_sim/faults", `[{"Kind":"boom"}]`, &e); s != 400 || e["error"] == "" {
		t.Fatalf("bad fault %d %v", s, e)
	}
	if code := mustUpdate(t, c, outIDReq(1, "a")); code != "isp.SYSTEM_ERROR" {
		t.Fatalf("fault via control plane: %s", code)
	}
	if s := ctl(t, addr, "GET", "/_sim/faults", "", &fs); s != 200 || fs[0].Fired != 1 || !fs[0].Spent {
		t.Fatalf("GET faults %d %+v", s, fs)
	}
	if s := ctl(t, addr, "POST", "/_sim/faults", `{"Kind":"empty","Count":1}`, &fs); s != 200 || len(fs) != 3 {
		t.Fatalf("POST fault %d %+v", s, fs)
	}
	if s := ctl(t, addr, "DELETE", "/_sim/faults", "", &fs); s != 200 || len(fs) != 0 {
		t.Fatalf("DELETE faults %d %+v", s, fs)
	}

	// Stats.
	mustUpdate(t, c, outIDReq(1, "b"))
	var st Stats
	if s := ctl(t, addr, "GET", "/_sim/stats", "", &st); s != 200 || st.Total != 3 || st.Applied != 1 ||
		st.Calls["UpdateSubscription"]["isp.SYSTEM_ERROR"] != 1 || st.Calls["UpdateSubscription"]["OK"] != 1 || st.Calls["QuerySubscriptionDetail"]["OK"] != 1 {
		t.Fatalf("stats %d %+v", s, st)
	}

	// Quota.
	var qu Quota
	if s := ctl(t, addr, "PUT", "/_sim/quota", `{"QPS":1,"Burst":1}`, &qu); s != 200 || qu.QPS != 1 || qu.Burst != 1 {
		t.Fatalf("PUT quota %d %+v", s, qu)
	}
	mustUpdate(t, c, outIDReq(1, "c"))
	if _, err := c.UpdateSubscription(outIDReq(1, "d")); serverError(t, err).ErrorCode() != "Throttling.User" {
		t.Fatalf("quota not applied: %v", err)
	}
	if s := ctl(t, addr, "PUT", "/_sim/quota", `{"QPS":-1}`, &e); s != 400 {
		t.Fatalf("negative quota %d", s)
	}
	if s := ctl(t, addr, "GET", "/_sim/quota", "", &qu); s != 200 || qu.QPS != 1 {
		t.Fatalf("GET quota %d %+v", s, qu)
	}

	// Reset: back to two sample bindings, no stats, no quota.
	if s := ctl(t, addr, "POST", "/_sim/reset", "", nil); s != 200 {
		t.Fatalf("reset %d", s)
	}
	ctl(t, addr, "GET", "/_sim/bindings", "", &all)
	ctl(t, addr, "GET", "/_sim/stats", "", &st)
	if len(all) != 2 || all[0].OutId != "" || st.Total != 0 {
		t.Fatalf("after reset: %+v %+v", all, st)
	}
	if code := mustUpdate(t, c, outIDReq(1, "e")); code != "OK" {
		t.Fatalf("after reset: %s", code)
	}

	// Errors.
	if s := ctl(t, addr, "GET", "/_sim/nothing", "", &e); s != 404 {
		t.Fatalf("unknown endpoint %d", s)
	}
	if s := ctl(t, addr, "PATCH", "/_sim/stats", "", &e); s != 405 {
		t.Fatalf("wrong method %d", s)
	}
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	run := func(seed int64) []string {
		sim, addr := startSim(t, Config{RandSeed: seed})
		c := newClient(t, addr)
		var out []string
		for i := range 5 {
			r := dyplsapi.CreateBindAxbRequest()
			r.PoolKey, r.PhoneNoA, r.Expiration = DefaultPoolKey, "1380000000"+string(rune('0'+i)), beijingIn(time.Hour)
			resp, err := c.BindAxb(r)
			if err != nil || resp.Code != "OK" {
				t.Fatalf("BindAxb: %v %+v", err, resp)
			}
			out = append(out, resp.RequestId, resp.SecretBindDTO.SubsId, resp.SecretBindDTO.SecretNo)
		}
		out = append(out, sim.PutBinding(Binding{PhoneNoA: "13900000000"}).SubsId)
		sim.Reset()
		resp, err := c.BindAxb(func() *dyplsapi.BindAxbRequest {
			r := dyplsapi.CreateBindAxbRequest()
			r.PoolKey, r.PhoneNoA, r.Expiration = DefaultPoolKey, "13800000000", beijingIn(time.Hour)
			return r
		}())
		if err != nil {
			t.Fatal(err)
		}
		// After Reset the sequence starts over.
		if resp.RequestId != out[0] || resp.SecretBindDTO.SubsId != out[1] {
			t.Errorf("Reset did not restart the sequence: %s %s vs %s %s", resp.RequestId, resp.SecretBindDTO.SubsId, out[0], out[1])
		}
		return out
	}
	a, b, c := run(42), run(42), run(43)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("RandSeed 42 differs at %d: %s vs %s", i, a[i], b[i])
		}
	}
	if a[0] == c[0] || a[1] == c[1] {
		t.Fatalf("RandSeed 42 and 43 agree: %v %v", a[:2], c[:2])
	}
	if len(a[0]) != 36 || a[0][8] != '-' || a[0] != stringsToUpper(a[0]) {
		t.Fatalf("RequestId shape %q", a[0])
	}
}

func stringsToUpper(s string) string { return string(bytes.ToUpper([]byte(s))) }
