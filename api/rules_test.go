package api_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/dyplsq/dyplsq/api"
)

func TestInvalidItemRejectsTheWholeRequest(t *testing.T) {
	e := newEnv(t, nil)
	bad := item(2)
	bad["PhoneNoA"] = "138-0013-8000"
	missing := item(3)
	delete(missing, "SubsId")
	r := e.do("POST", "/v1/updates", bearer(token), body(t, []map[string]any{item(1), bad, missing}), nil)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	ae := decode[apiErr](t, r)
	if ae.Error.Code != "validation_failed" || len(ae.Error.Details) != 2 {
		t.Fatalf("answer %s", r.body)
	}
	got := map[string]bool{}
	for _, d := range ae.Error.Details {
		if d.Index == nil || d.Reason == "" {
			t.Fatalf("detail without index or reason: %s", r.body)
		}
		got[strconv.Itoa(*d.Index)+":"+d.Field] = true
	}
	if !got["1:PhoneNoA"] || !got["2:SubsId"] {
		t.Fatalf("details %s, want index 1 PhoneNoA and index 2 SubsId", r.body)
	}
	if n := e.queued(e.live); n != 0 {
		t.Fatalf("%d tasks queued, want none", n)
	}
	// A client may not set the metadata (its version decides who wins).
	meta := item(1)
	meta["_meta"] = map[string]any{"version": 1 << 40}
	r = e.do("POST", "/v1/updates", bearer(token), body(t, meta), nil)
	if ae := decode[apiErr](t, r); r.status != 422 || len(ae.Error.Details) != 1 || ae.Error.Details[0].Field != "_meta" {
		t.Fatalf("_meta: %d %s", r.status, r.body)
	}
	if n := e.queued(e.live); n != 0 {
		t.Fatalf("%d tasks queued, want none", n)
	}
	// Two items under one IdempotencyKey: the second is refused by index.
	a, b := item(1), item(2)
	a["IdempotencyKey"], b["IdempotencyKey"] = "order-7", "order-7"
	r = e.do("POST", "/v1/updates", bearer(token), body(t, []map[string]any{a, b}), nil)
	if ae := decode[apiErr](t, r); r.status != 422 || len(ae.Error.Details) != 1 || ae.Error.Details[0].Field != "IdempotencyKey" ||
		*ae.Error.Details[0].Index != 1 {
		t.Fatalf("repeated key: %d %s", r.status, r.body)
	}
	if n := e.queued(e.live); n != 0 {
		t.Fatalf("%d tasks queued, want none", n)
	}
}

func TestIdempotencyKeyQueuesNothingTwice(t *testing.T) {
	e := newEnv(t, nil)
	items := []map[string]any{item(1), item(2), item(3)}
	hdr := map[string]string{"Idempotency-Key": "order-42"}
	first := e.do("POST", "/v1/updates", bearer(token), body(t, items), hdr)
	// The same request, written differently (spacing, key case).
	again := bytes.ReplaceAll(body(t, items), []byte(`"PhoneNoA"`), []byte(` "phonenoa" `))
	second := e.do("POST", "/v1/updates", bearer(token), again, hdr)
	if first.status != http.StatusAccepted || second.status != http.StatusAccepted {
		t.Fatalf("POSTs: %d %s; %d %s", first.status, first.body, second.status, second.body)
	}
	a, b := decode[accepted](t, first), decode[accepted](t, second)
	for i := range a.Items {
		x, y := a.Items[i], b.Items[i]
		if x.Duplicate || !y.Duplicate || x.TaskID != y.TaskID || x.Version != y.Version || x.Version == 0 {
			t.Fatalf("item %d: first %+v, again %+v", i, x, y)
		}
	}
	if a.BatchID != b.BatchID {
		t.Fatalf("batches %s and %s", a.BatchID, b.BatchID)
	}
	if n := e.queued(e.live); n != 3 {
		t.Fatalf("%d tasks queued, want 3", n)
	}
	// The same key with another request: refused, nothing queued.
	items[1]["PhoneNoA"] = "13700000000"
	r := e.do("POST", "/v1/updates", bearer(token), body(t, items), hdr)
	if ae := decode[apiErr](t, r); r.status != http.StatusConflict || ae.Error.Code != "idempotency_key_reused" {
		t.Fatalf("other request under the key: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/updates?queue=bulk", bearer(token), body(t, items[:1]), map[string]string{"Idempotency-Key": "order-42"})
	if r.status != http.StatusConflict {
		t.Fatalf("same key to another queue: %d %s", r.status, r.body)
	}
	// A per-item IdempotencyKey, without the header.
	k := item(4)
	k["IdempotencyKey"] = "crm-7"
	r1 := e.do("POST", "/v1/updates", bearer(token), body(t, k), nil)
	r2 := e.do("POST", "/v1/updates", bearer(token), body(t, k), nil)
	x, y := decode[accepted](t, r1), decode[accepted](t, r2)
	if r1.status != 202 || r2.status != 202 || x.Items[0].Duplicate || !y.Items[0].Duplicate || x.Items[0].TaskID != y.Items[0].TaskID {
		t.Fatalf("per-item key: %s / %s", r1.body, r2.body)
	}
	if n := e.queued(e.live); n != 4 {
		t.Fatalf("%d tasks queued, want 4", n)
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t, nil)
	for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Basic " + token, "Bearer " + token + "x", "Bearer"} {
		r := e.do("POST", "/v1/updates", auth, body(t, item(1)), nil)
		if ae := decode[apiErr](t, r); r.status != http.StatusUnauthorized || ae.Error.Code != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("auth %q: %d %s", auth, r.status, r.body)
		}
		for _, p := range []string{"/v1/updates/x_1", "/v1/batches/b2222222222222222"} {
			if r := e.do("GET", p, auth, nil, nil); r.status != http.StatusUnauthorized {
				t.Fatalf("GET %s with %q: %d", p, auth, r.status)
			}
		}
	}
	if n := e.queued(e.live); n != 0 {
		t.Fatalf("%d tasks queued without a token", n)
	}
	if r := e.do("GET", "/v1/openapi.json", "", nil, nil); r.status != 200 || !bytes.Equal(r.body, api.Document) {
		t.Fatalf("the document: %d", r.status)
	}
	if strings.Contains(e.logs.String(), token) {
		t.Fatal("a token is in the logs")
	}
	if e.requests("POST /v1/updates", "401") != 5 {
		t.Fatalf("401s counted: %v", e.requests("POST /v1/updates", "401"))
	}
}

func TestOversizedBody(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxBodyBytes = 64 << 10 })
	big := make([]map[string]any, 0, 1000)
	for i := range 1000 {
		big = append(big, item(1+i%100))
	}
	r := e.do("POST", "/v1/updates", bearer(token), body(t, big), nil)
	if ae := decode[apiErr](t, r); r.status != http.StatusRequestEntityTooLarge || ae.Error.Code != "payload_too_large" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if n := e.queued(e.live); n != 0 {
		t.Fatalf("%d tasks queued", n)
	}
}

func TestTooManyItemsAndBadBodies(t *testing.T) {
	e := newEnv(t, nil)
	many := make([]map[string]any, api.MaxItems+1)
	for i := range many {
		many[i] = item(1 + i%100)
	}
	cases := []struct {
		name   string
		body   []byte
		ctype  string
		status int
		code   string
	}{
		{"too many", body(t, many), "application/json", 400, "invalid_json"},
		{"not json", []byte(`{"SubsId":`), "application/json", 400, "invalid_json"},
		{"empty array", []byte(`[]`), "application/json", 400, "invalid_json"},
		{"a string", []byte(`"x"`), "application/json", 400, "invalid_json"},
		{"form", []byte(`a=b`), "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"duplicate key", []byte(`{"SubsId":"1000000000000001","subsid":"1000000000000002","PhoneNoX":"17000000000","OperateType":"updateOutId","OutId":"x","PoolKey":"FC100000000000001"}`), "application/json", 422, "validation_failed"},
		{"unknown key", []byte(`[{"Nope":1}]`), "application/json", 422, "validation_failed"},
		{"deep", []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), "application/json", 400, "invalid_json"},
	}
	for _, c := range cases {
		r := e.do("POST", "/v1/updates", bearer(token), c.body, map[string]string{"Content-Type": c.ctype})
		if ae := decode[apiErr](t, r); r.status != c.status || ae.Error.Code != c.code {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	if r := e.do("POST", "/v1/updates?queue=nope", bearer(token), body(t, item(1)), nil); r.status != 400 {
		t.Errorf("unknown queue: %d", r.status)
	}
	if r := e.do("POST", "/v1/updates", bearer(token), body(t, item(1)), map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}); r.status != 400 {
		t.Errorf("long key: %d", r.status)
	}
	if r := e.do("DELETE", "/v1/updates", bearer(token), nil, nil); r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Errorf("DELETE: %d", r.status)
	}
	if r := e.do("GET", "/v2/nothing", bearer(token), nil, nil); r.status != 404 {
		t.Errorf("unknown route: %d", r.status)
	}
	if r := e.do("GET", "/v1/updates/b2222222222222222_1", bearer(token), nil, nil); r.status != 404 {
		t.Errorf("unknown task: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/batches/b2222222222222222", bearer(token), nil, nil); r.status != 404 {
		t.Errorf("unknown batch: %d %s", r.status, r.body)
	}
	if n := e.queued(e.live); n != 0 {
		t.Fatalf("%d tasks queued", n)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Rate, c.Burst = 0.5, 2 })
	var last response
	for range 3 {
		last = e.do("GET", "/v1/batches/b2222222222222222", bearer(token), nil, nil)
	}
	if ae := decode[apiErr](t, last); last.status != http.StatusTooManyRequests || ae.Error.Code != "rate_limited" {
		t.Fatalf("third request: %d %s", last.status, last.body)
	}
	if s, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Fatalf("Retry-After %q", last.header.Get("Retry-After"))
	}
}
