package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

const (
	testUser = "ops"
	testPass = "s3cret"
	payload  = `{"PhoneNoA":"13812345678","SubsId":"1000000000000001"}`
)

// fixture is one Redis with a pending task holding a phone number in queue
// live, and in queue dead an archived task whose error holds another and a
// completed task whose result holds a third.
type fixture struct {
	rc         *redis.Client
	insp       *asynq.Inspector
	live, dead string
	pendingID  string
	archivedID string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rc := redistest.Client(t)
	ns := redistest.Namespace(t)
	f := &fixture{rc: rc, insp: asynq.NewInspectorFromRedisClient(rc), live: ns + "-live", dead: ns + "-dead"}
	t.Cleanup(func() {
		// DeleteQueue leaves completed tasks and daily stats behind.
		ctx := context.Background()
		for _, q := range []string{f.live, f.dead} {
			_, _ = f.insp.DeleteAllCompletedTasks(q)
			_ = f.insp.DeleteQueue(q, true)
			iter := rc.Scan(ctx, 0, "asynq:{"+q+"}:*", 100).Iterator()
			for iter.Next(ctx) {
				rc.Del(ctx, iter.Val())
			}
		}
	})

	client := asynq.NewClientFromRedisClient(rc)
	info, err := client.Enqueue(asynq.NewTask("dypls:update_subscription", []byte(payload)), asynq.Queue(f.live))
	if err != nil {
		t.Fatal(err)
	}
	f.pendingID = info.ID
	for _, typ := range []string{"fail", "ok"} {
		if _, err := client.Enqueue(asynq.NewTask(typ, []byte(payload)), asynq.Queue(f.dead), asynq.Retention(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	mux := asynq.NewServeMux()
	mux.HandleFunc("fail", func(context.Context, *asynq.Task) error {
		return fmt.Errorf("x 13912345678: %w", asynq.SkipRetry)
	})
	mux.HandleFunc("ok", func(_ context.Context, task *asynq.Task) error {
		_, err := task.ResultWriter().Write([]byte(`{"RequestId":"A1B2","PhoneNoB":"13712345678"}`))
		return err
	})
	srv := asynq.NewServerFromRedisClient(rc, asynq.Config{
		Concurrency: 2, Queues: map[string]int{f.dead: 1},
		Logger: quietLogger{}, LogLevel: asynq.FatalLevel, ShutdownTimeout: time.Second,
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for {
		qi, err := f.insp.GetQueueInfo(f.dead)
		if err == nil && qi.Archived == 1 && qi.Completed == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks in %s not archived and completed in time: %+v, %v", f.dead, qi, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	archived, err := f.insp.ListArchivedTasks(f.dead)
	if err != nil || len(archived) != 1 {
		t.Fatalf("archived tasks: %v, %v", archived, err)
	}
	f.archivedID = archived[0].ID
	return f
}

func (f *fixture) server(t *testing.T, readOnly bool, ready func(context.Context) error) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(Config{
		Addr: "127.0.0.1:0", User: testUser, Password: testPass, ReadOnly: readOnly,
		RedisConnOpt: SharedRedis{Client: f.rc}, Registry: reg, Inspector: f.insp,
		Ready: ready, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, reg
}

// do sends one request to h, with credentials when auth is set.
func do(t *testing.T, h http.Handler, method, path string, auth bool) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if auth {
		req.SetBasicAuth(testUser, testPass)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestMonitor(t *testing.T) {
	f := newFixture(t)
	s, reg := f.server(t, true, func(context.Context) error { return nil })
	h := s.Handler()

	t.Run("API masks payloads, errors and results", func(t *testing.T) {
		for _, tc := range []struct {
			path       string
			want, keep []string
		}{
			{"/monitoring/api/queues/" + f.live + "/pending_tasks", []string{"138****5678"}, []string{f.pendingID}},
			{"/monitoring/api/queues/" + f.live + "/tasks/" + f.pendingID, []string{"138****5678"}, []string{f.pendingID}},
			{"/monitoring/api/queues/" + f.dead + "/archived_tasks", []string{"138****5678", "x 139****5678"}, []string{f.archivedID}},
			{"/monitoring/api/queues/" + f.dead + "/tasks/" + f.archivedID, []string{"x 139****5678"}, []string{f.archivedID}},
			{"/monitoring/api/queues/" + f.dead + "/completed_tasks", []string{"137****5678", "A1B2"}, nil},
		} {
			rec := do(t, h, "GET", tc.path, true)
			body := rec.Body.String()
			if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("GET %s: %d %s", tc.path, rec.Code, body)
			}
			for _, n := range []string{"13812345678", "13912345678", "13712345678"} {
				if strings.Contains(body, n) {
					t.Errorf("GET %s shows %s: %s", tc.path, n, body)
				}
			}
			for _, w := range append(append(tc.want, tc.keep...), "1000000000000001") {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s lacks %q: %s", tc.path, w, body)
				}
			}
		}
	})

	t.Run("basic auth", func(t *testing.T) {
		for _, path := range []string{"/monitoring/", "/monitoring/api/queues", "/metrics", "/"} {
			rec := do(t, h, "GET", path, false)
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Basic realm="dyplsq"` {
				t.Errorf("GET %s without credentials: %d %q", path, rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		}
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.SetBasicAuth(testUser, "wrong")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("wrong password: %d", rec.Code)
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if rec := do(t, h, "GET", path, false); rec.Code != http.StatusOK {
				t.Errorf("GET %s without credentials: %d", path, rec.Code)
			}
		}
	})

	t.Run("UI page", func(t *testing.T) {
		rec := do(t, h, "GET", "/monitoring/", true)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("GET /monitoring/: %d %s", rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec := do(t, h, "GET", "/", true); rec.Code != http.StatusFound || rec.Header().Get("Location") != PagePath {
			t.Errorf("GET /: %d %s", rec.Code, rec.Header().Get("Location"))
		}
	})

	t.Run("metrics", func(t *testing.T) {
		rec := do(t, h, "GET", "/metrics", true)
		want := `asynq_queue_size{queue="` + f.live + `"} 1`
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Fatalf("GET /metrics: %d, lacks %s:\n%s", rec.Code, want, rec.Body.String())
		}
		// A second server on the same registry must not add the series
		// twice, and the registry must gather them without complaint.
		s2, err := New(Config{Addr: "127.0.0.1:0", RedisConnOpt: SharedRedis{Client: f.rc}, Registry: reg, Inspector: f.insp})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Shutdown(context.Background())
		if _, err := reg.Gather(); err != nil {
			t.Errorf("Gather: %v", err)
		}
		// A pedantic registry checks every collected series against the
		// declared descriptors.
		pedantic := prometheus.NewPedanticRegistry()
		if err := registerQueueMetrics(pedantic, f.insp); err != nil {
			t.Fatal(err)
		}
		if _, err := pedantic.Gather(); err != nil {
			t.Errorf("declared descriptors do not match x/metrics: %v", err)
		}
	})

	t.Run("read-only refuses changes", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{
			{"POST", "/monitoring/api/queues/" + f.live + ":pause"},
			{"DELETE", "/monitoring/api/queues/" + f.live + "/pending_tasks:delete_all"},
			{"DELETE", "/monitoring/api/queues/" + f.live + "/pending_tasks/" + f.pendingID},
			{"POST", "/monitoring/api/queues/" + f.dead + "/archived_tasks:run_all"},
			{"DELETE", "/monitoring/api/queues/" + f.live},
		} {
			if rec := do(t, h, r.method, r.path, true); rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d %s", r.method, r.path, rec.Code, rec.Body.String())
			}
		}
		qi, err := f.insp.GetQueueInfo(f.live)
		if err != nil || qi.Paused || qi.Pending != 1 {
			t.Errorf("queue changed: %+v, %v", qi, err)
		}
	})
}

func TestReadWrite(t *testing.T) {
	f := newFixture(t)
	s, _ := f.server(t, false, nil)
	for _, action := range []string{"pause", "resume"} {
		if rec := do(t, s.Handler(), "POST", "/monitoring/api/queues/"+f.live+":"+action, true); rec.Code != http.StatusNoContent {
			t.Fatalf("POST %s with ReadOnly false: %d %s", action, rec.Code, rec.Body.String())
		}
		qi, err := f.insp.GetQueueInfo(f.live)
		if err != nil || qi.Paused != (action == "pause") {
			t.Errorf("after %s: %+v, %v", action, qi, err)
		}
	}
}

func TestReadyz(t *testing.T) {
	f := &fixture{rc: redistest.Client(t)}
	f.insp = asynq.NewInspectorFromRedisClient(f.rc)
	old := readyTimeout
	readyTimeout = 100 * time.Millisecond
	t.Cleanup(func() { readyTimeout = old })

	for _, tc := range []struct {
		name  string
		ready func(context.Context) error
		auth  bool
		code  int
		body  string
	}{
		{"ready", func(context.Context) error { return nil }, false, 200, "ready\n"},
		{"plain error", func(context.Context) error {
			return errors.New("halted: isv.ACCOUNT_ABNORMAL for 13812345678")
		}, false, 503, "not ready\n"},
		{"plain error, with credentials", func(context.Context) error {
			return errors.New("halted: isv.ACCOUNT_ABNORMAL for 13812345678")
		}, true, 503, "not ready: halted: isv.ACCOUNT_ABNORMAL for 138****5678\n"},
		{"public reason", func(context.Context) error {
			return fmt.Errorf("wrapped: %w", reasoned{"halted: isv.ACCOUNT_ABNORMAL", "account of 13812345678 abnormal"})
		}, false, 503, "not ready: halted: isv.ACCOUNT_ABNORMAL\n"},
		{"public reason, with credentials", func(context.Context) error {
			return reasoned{"halted: isv.ACCOUNT_ABNORMAL", "account of 13812345678 abnormal"}
		}, true, 503, "not ready: account of 138****5678 abnormal\n"},
		{"hangs", func(context.Context) error { time.Sleep(time.Second); return nil }, false, 503,
			"not ready: readiness check timed out after 100ms\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := f.server(t, true, tc.ready)
			start := time.Now()
			rec := do(t, s.Handler(), "GET", "/readyz", tc.auth)
			if rec.Code != tc.code || rec.Body.String() != tc.body {
				t.Errorf("GET /readyz: %d %q, want %d %q", rec.Code, rec.Body.String(), tc.code, tc.body)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("GET /readyz took %v", d)
			}
		})
	}
}

// reasoned is a readiness error with a public reason and a detail.
type reasoned struct{ reason, detail string }

func (r reasoned) Error() string        { return r.detail }
func (r reasoned) PublicReason() string { return r.reason }

func TestStartShutdown(t *testing.T) {
	f := &fixture{rc: redistest.Client(t)}
	f.insp = asynq.NewInspectorFromRedisClient(f.rc)
	s, _ := f.server(t, true, nil)
	addr, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 401} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
	if err := f.rc.Ping(ctx).Err(); err != nil {
		t.Errorf("Shutdown closed the shared Redis client: %v", err)
	}
}

func TestOwnRedisConnection(t *testing.T) {
	opt, err := asynq.ParseRedisURI(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Addr: "127.0.0.1:0", RedisConnOpt: opt, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(t, s.Handler(), "GET", "/monitoring/api/queues", false); rec.Code != http.StatusOK {
		t.Errorf("GET /monitoring/api/queues: %d %s", rec.Code, rec.Body.String())
	}
	if rec := do(t, s.Handler(), "GET", "/metrics", false); rec.Code != http.StatusOK {
		t.Errorf("GET /metrics: %d", rec.Code)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// quietLogger drops asynq's own log lines.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}
