package monitor

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestReadyzHaltDetailNeedsAuth halts a real worker with a wrong
// AccessKey secret: the simulator answers SignatureDoesNotMatch with the
// string to sign, which holds the AccessKeyId, the PoolKey, the SubsId and
// the phone numbers. /readyz without credentials says only that the worker
// is halted and by which code; with the monitor's credentials it gives the
// detail (numbers masked).
func TestReadyzHaltDetailNeedsAuth(t *testing.T) {
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	queue := ns + "-live"
	sim, simSrv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 3, RandSeed: 1}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(); simSrv.Close() })
	api, err := dypls.New(dypls.Config{Endpoint: "http://" + simAddr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: "not-the-secret", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	w, err := worker.New(worker.Config{
		Queues: map[string]int{queue: 1}, Concurrency: 2, HaltWait: 200 * time.Millisecond,
		TaskCheckInterval: 20 * time.Millisecond, KeyPrefix: ns, WorkerID: ns, Logger: zerolog.Nop(),
	}, rdb, api)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { _ = insp.DeleteQueue(queue, true) })

	b := dyplsim.SeedBinding(1)
	u := tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: "updateNoA", PhoneNoA: "13800138000"}
	p := tasks.NewProducer(rdb)
	p.Queue, p.KeyPrefix = queue, ns
	if _, err := p.Enqueue(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !w.Halt().Halted {
		if time.Now().After(deadline) {
			t.Fatal("the worker never halted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The worker's credential check halts it before the job runs: its
	// string-to-sign names a SubsId too.
	if msg := w.Halt().Message; !strings.Contains(msg, "SubsId%3D") || !strings.Contains(msg, dyplsim.DefaultAccessKeyID) {
		t.Fatalf("the halt's message does not hold what this test guards: %q", msg)
	}

	f := &fixture{rc: rdb, insp: insp}
	s, _ := f.server(t, true, w.Ready)
	rec := do(t, s.Handler(), "GET", "/readyz", false)
	body := rec.Body.String()
	if want := "not ready: halted: SignatureDoesNotMatch: " + worker.HaltHint("SignatureDoesNotMatch") + "\n"; rec.Code != 503 || body != want {
		t.Errorf("GET /readyz without credentials: %d %q, want 503 %q", rec.Code, body, want)
	}
	for _, secret := range []string{dyplsim.DefaultAccessKeyID, b.PoolKey, b.SubsId, b.PhoneNoX, u.PhoneNoA, "138****8000"} {
		if strings.Contains(body, secret) {
			t.Errorf("GET /readyz without credentials shows %q: %q", secret, body)
		}
	}
	if d := regexp.MustCompile(`\d{4,}`).FindString(body); d != "" {
		t.Errorf("GET /readyz without credentials shows digits %q: %q", d, body)
	}
	// Wrong credentials are no credentials.
	req := httptest.NewRequest("GET", "/readyz", nil)
	req.SetBasicAuth(testUser, "wrong")
	wrong := httptest.NewRecorder()
	s.Handler().ServeHTTP(wrong, req)
	if wrong.Code != 503 || wrong.Body.String() != body {
		t.Errorf("GET /readyz with a wrong password: %d %q, want what no credentials get", wrong.Code, wrong.Body.String())
	}
	rec = do(t, s.Handler(), "GET", "/readyz", true)
	if body := rec.Body.String(); rec.Code != 503 || !strings.Contains(body, "SignatureDoesNotMatch") || !strings.Contains(body, "SubsId%3D") ||
		strings.Contains(body, u.PhoneNoA) {
		t.Errorf("GET /readyz with the monitor's credentials: %d %q, want the detail, numbers masked", rec.Code, body)
	}
}

// TestReadyzNamesRedis: with Redis down, /readyz says so to anyone, and
// gives the error itself only with the monitor's credentials.
func TestReadyzNamesRedis(t *testing.T) {
	red := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: red.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	api, err := dypls.New(dypls.Config{Endpoint: "http://127.0.0.1:1", AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	w, err := worker.New(worker.Config{KeyPrefix: redistest.Namespace(t), Logger: zerolog.Nop()}, rdb, api)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{rc: redistest.Client(t)}
	f.insp = asynq.NewInspectorFromRedisClient(f.rc)
	s, _ := f.server(t, true, w.Ready)
	// Redis is up, but no signed call has been answered (the endpoint is
	// unreachable): not ready for that.
	if rec := do(t, s.Handler(), "GET", "/readyz", false); rec.Code != 503 || rec.Body.String() != "not ready: credentials not verified yet\n" {
		t.Fatalf("GET /readyz with Redis up, credentials never checked: %d %q", rec.Code, rec.Body.String())
	}
	red.Stop()
	if rec := do(t, s.Handler(), "GET", "/readyz", false); rec.Code != 503 || rec.Body.String() != "not ready: redis unreachable\n" {
		t.Errorf("GET /readyz with Redis down, no credentials: %d %q", rec.Code, rec.Body.String())
	}
	if rec := do(t, s.Handler(), "GET", "/readyz", true); rec.Code != 503 || !strings.Contains(rec.Body.String(), "redis unreachable: ") ||
		!strings.Contains(rec.Body.String(), red.Addr) {
		t.Errorf("GET /readyz with Redis down, with credentials: %d %q, want the error", rec.Code, rec.Body.String())
	}
}
