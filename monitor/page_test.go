package monitor

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/worker"
)

// fullNumber finds an 11-digit mobile number not inside a longer digit run.
var fullNumber = regexp.MustCompile(`(?:^|[^0-9])1[0-9]{10}(?:[^0-9]|$)`)

const pageSubs = "1000000000000042"

// pageFixture writes real records under a fresh key prefix: a batch of four
// rows (one applied, one dead), three dead letters of two codes, a halted
// worker, the binding pageSubs's fence and a job of it waiting in asynq,
// and this worker's call counters. Phone numbers are in every text.
type pageFixture struct {
	rc      *redis.Client
	prefix  string
	queue   string
	batchID string
	taskID  string
	metrics *worker.Metrics
	reg     *prometheus.Registry
}

func newPageFixture(t *testing.T) *pageFixture {
	t.Helper()
	ctx := context.Background()
	rc := redistest.Client(t)
	ns := redistest.Namespace(t)
	f := &pageFixture{rc: rc, prefix: ns, queue: ns + "-live", reg: prometheus.NewRegistry()}
	insp := asynq.NewInspectorFromRedisClient(rc)
	t.Cleanup(func() {
		_ = insp.DeleteQueue(f.queue, true)
		for _, pat := range []string{ns + ":*", "asynq:{" + f.queue + "}*"} {
			iter := rc.Scan(ctx, 0, pat, 500).Iterator()
			for iter.Next(ctx) {
				rc.Del(ctx, iter.Val())
			}
		}
	})
	f.writeBatch(t, ctx)
	f.writeDead(t, ctx)
	halts := &admin.Halts{Redis: rc, Prefix: ns}
	if err := halts.Report(ctx, admin.Halt{Worker: "host-a:4242", Host: "host-a", PID: 4242,
		Code: "isv.ACCOUNT_ABNORMAL", Message: "account of 13700001111 is abnormal",
		Hint: "check the account", NextProbe: time.Now().Add(40 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	f.writeBinding(t, ctx)
	f.metrics = worker.NewMetrics(f.reg)
	f.metrics.LimitRate.Set(42.5)
	return f
}

func (f *pageFixture) writeBatch(t *testing.T, ctx context.Context) {
	t.Helper()
	bs := &batch.Store{Redis: f.rc, Prefix: f.prefix}
	id, err := batch.IDOf("csv", strings.NewReader("page test "+f.prefix))
	if err != nil {
		t.Fatal(err)
	}
	f.batchID = id
	if _, _, err := bs.Begin(ctx, batch.Info{ID: id, File: "from-13800138000.csv", Format: "csv", Queue: "dyplsq-bulk",
		Lines: 5, Rows: 4, ValidRows: 4}); err != nil {
		t.Fatal(err)
	}
	var entries []batch.Entry
	for line := 2; line <= 5; line++ {
		entries = append(entries, batch.Entry{Line: line, Outcome: batch.OutcomePending})
	}
	if _, err := bs.Record(ctx, id, entries); err != nil {
		t.Fatal(err)
	}
	if err := bs.Mark(ctx, id, 2, batch.RowState{Outcome: batch.OutcomeApplied, RequestID: "REQ-1"}); err != nil {
		t.Fatal(err)
	}
	if err := bs.Mark(ctx, id, 3, batch.RowState{Outcome: batch.OutcomeDead, Code: "isv.SUBS_NOT_EXIST",
		Message: "no binding for 13811112222"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func (f *pageFixture) writeDead(t *testing.T, ctx context.Context) {
	t.Helper()
	ds := &deadletter.Store{Redis: f.rc, Prefix: f.prefix}
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for i, r := range []deadletter.Record{
		{TaskID: "dead-1", Code: "isv.MOBILE_NUMBER_ILLEGAL", Message: "PhoneNoA 13912345678 is illegal", SubsId: "1000000000000007", OperateType: "updateNoA", Version: 3},
		{TaskID: "dead-2", Code: "isv.MOBILE_NUMBER_ILLEGAL", Message: "PhoneNoA 13912340000 is illegal", SubsId: "1000000000000008", OperateType: "updateNoA", Version: 4},
		{TaskID: "dead-3", Code: "isv.BIND_CONFLICT", Message: "B 13655556666 is bound elsewhere", SubsId: pageSubs, OperateType: "updateNoB", Version: 5},
	} {
		r.Queue, r.Type = f.queue, "dypls:update_subscription"
		r.DiedAt = base.Add(time.Duration(i) * time.Hour)
		r.Attempts = 1
		r.SetPayload([]byte(`{"SubsId":"` + r.SubsId + `","OperateType":"` + r.OperateType + `","PhoneNoA":"13912345678"}`))
		if err := ds.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

// writeBinding lays out pageSubs as the worker leaves it: updateNoA applied
// at version 9 with its RequestId; an updateNoA call of version 12 in doubt;
// a job of updateExpire (version 11) waiting to be retried after a 5xx.
func (f *pageFixture) writeBinding(t *testing.T, ctx context.Context) {
	t.Helper()
	tag := f.prefix + ":{" + pageSubs + "}"
	deadline := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	if err := f.rc.HSet(ctx, tag+":fence", "updateNoA", "9", "r:updateNoA", "REQ-APPLIED-9",
		"i:updateNoA:task-12", "12|"+deadline).Err(); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"PoolKey": "FC100000000000001", "SubsId": pageSubs, "PhoneNoX": "17000000042",
		"OperateType": "updateExpire", "Expiration": "2030-01-01 00:00:00", "_meta": map[string]any{"schema": 1, "version": 11}})
	info, err := asynq.NewClientFromRedisClient(f.rc).Enqueue(asynq.NewTask("dypls:update_subscription", payload),
		asynq.Queue(f.queue), asynq.ProcessIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.taskID = info.ID
	if err := f.rc.HSet(ctx, tag+":job:"+info.ID, "attempts", "2", "last_code", "HTTP.503",
		"last_message", "gateway answered 503 for 17000000042", "last_failure", time.Now().UnixMilli(), "gen", "0").Err(); err != nil {
		t.Fatal(err)
	}
}

func (f *pageFixture) server(t *testing.T, user, pass string) *Server {
	t.Helper()
	s, err := New(Config{
		Addr: "127.0.0.1:0", User: user, Password: pass, ReadOnly: true,
		RedisConnOpt: SharedRedis{Client: f.rc}, Registry: f.reg, KeyPrefix: f.prefix, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func getPage(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := do(t, h, "GET", path, true)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %s\n%s", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	body := rec.Body.String()
	if m := fullNumber.FindString(body); m != "" {
		t.Errorf("GET %s shows a whole phone number %q:\n%s", path, m, body)
	}
	return body
}

func wantAll(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

func TestPage(t *testing.T) {
	f := newPageFixture(t)
	s := f.server(t, testUser, testPass)
	h := s.Handler()
	// Calls made after the server took its first sample.
	f.metrics.Calls.WithLabelValues("UpdateSubscription", "OK", "ok").Add(7)
	f.metrics.Calls.WithLabelValues("UpdateSubscription", "Throttling.User", "throttled").Add(3)
	f.metrics.Calls.WithLabelValues("QuerySubscriptionDetail", "OK", "ok").Add(50)
	if err := f.rc.HSet(context.Background(), f.prefix+":limit:UpdateSubscription",
		"rate", "40", "at", time.Now().UnixMilli(), "cut", time.Now().UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}

	t.Run("overview", func(t *testing.T) {
		body := getPage(t, h, PagePath)
		wantAll(t, body,
			// The batch: progress and outcomes by code.
			f.batchID, `<progress value="2" max="4"`, "2 of 4 ended (50.0 %)",
			"applied 1", "dead 1", "pending 2", "dead <code>isv.SUBS_NOT_EXIST</code> 1", "from-138****8000.csv",
			// Dead letters by code, with counts, oldest and newest.
			"3 records kept.", `data-code="isv.MOBILE_NUMBER_ILLEGAL"`,
			`<td><code>isv.MOBILE_NUMBER_ILLEGAL</code></td><td class="n">2</td><td>2026-03-01 08:00:00Z</td><td>2026-03-01 09:00:00Z</td>`,
			"PhoneNoA 139****0000 is illegal", `<td><code>isv.BIND_CONFLICT</code></td><td class="n">1</td>`,
			// The halted worker.
			"host-a:4242", "isv.ACCOUNT_ABNORMAL", "check the account", "account of 137****1111 is abnormal",
			// The shared rate, and this worker's throttled share (3 of 10
			// UpdateSubscription calls; other actions do not count).
			"42.5 calls/s", "40.0 calls/s at", `<td class="n">10</td><td class="n">3</td><td class="n">30.0 %</td>`,
			// Links to asynqmon.
			`href="/monitoring/"`)
		if strings.Contains(body, "No worker is halted") {
			t.Error("the halt is not shown")
		}
	})

	t.Run("lookup", func(t *testing.T) {
		body := getPage(t, h, PagePath+"?subs="+pageSubs)
		wantAll(t, body,
			// updateNoA: applied version 9, a call of version 12 in doubt.
			`data-op="updateNoA"`, `<td class="n">9</td><td><code>REQ-APPLIED-9</code></td>`, "version 12 (task task-12)",
			// updateExpire: its job waits in asynq after a 503.
			`data-op="updateExpire"`, "<code>"+f.taskID+"</code> version 11: scheduled <code>HTTP.503</code>",
			"gateway answered 503 for 170****0042",
			// updateNoB: dead.
			`data-op="updateNoB"`, "<code>dead-3</code> version 5: dead <code>isv.BIND_CONFLICT</code> B 136****6666 is bound elsewhere")
		if strings.Contains(body, "dead-1") && strings.Contains(body, "1000000000000007\">") {
			t.Error("the lookup shows another binding's dead letters")
		}
	})

	t.Run("unknown and invalid SubsId", func(t *testing.T) {
		body := getPage(t, h, PagePath+"?subs=1000000000009999")
		wantAll(t, body, "dyplsq has no record of SubsId 1000000000009999")
		body = getPage(t, h, PagePath+"?subs=%3Cscript%3E")
		wantAll(t, body, "not a SubsId", "&lt;script&gt;")
		if strings.Contains(body, "<script>") {
			t.Error("the SubsId is not escaped")
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, path := range []string{PagePath, PagePath + "?subs=" + pageSubs, "/"} {
			rec := do(t, h, "GET", path, false)
			if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "isv.") {
				t.Errorf("GET %s without credentials: %d %s", path, rec.Code, rec.Body.String())
			}
		}
		if rec := do(t, h, "GET", "/", true); rec.Code != http.StatusFound || rec.Header().Get("Location") != PagePath {
			t.Errorf("GET /: %d %s", rec.Code, rec.Header().Get("Location"))
		}
		if rec := do(t, h, "POST", PagePath, true); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", PagePath, rec.Code)
		}
	})
}

// TestPageOpenOnLoopback: without credentials configured (loopback only)
// the page needs none, and a Redis that does not answer shows as such.
func TestPageOpenOnLoopback(t *testing.T) {
	f := newPageFixture(t)
	h := f.server(t, "", "").Handler()
	body := getPage(t, h, PagePath)
	wantAll(t, body, f.batchID)

	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	s, err := New(Config{Addr: "127.0.0.1:0", RedisConnOpt: SharedRedis{Client: dead},
		Inspector: asynq.NewInspectorFromRedisClient(dead), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	body = getPage(t, s.Handler(), PagePath)
	wantAll(t, body, "batches unavailable:", "dead letters unavailable:", "halts unavailable:")
}

func TestCallSamples(t *testing.T) {
	c := &callSamples{keep: 10 * time.Minute}
	t0 := time.Unix(1000, 0)
	for i := range 31 {
		// 10 calls a minute, the last 2 minutes with 5 of them throttled.
		thr := float64(max(0, i-28) * 5)
		c.add(callSample{at: t0.Add(time.Duration(i) * time.Minute), calls: float64(i * 10), throttle: thr})
	}
	if n := len(c.samples); n != 11 {
		t.Errorf("kept %d samples, want 11 (10 minutes and the one before)", n)
	}
	span, calls, thr := c.share(time.Minute)
	if span != time.Minute || calls != 10 || thr != 5 {
		t.Errorf("last minute: %s %v %v", span, calls, thr)
	}
	span, calls, thr = c.share(time.Hour)
	if span != 10*time.Minute || calls != 100 || thr != 10 {
		t.Errorf("last hour (only 10 minutes kept): %s %v %v", span, calls, thr)
	}
}
