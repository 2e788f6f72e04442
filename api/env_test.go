package api_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/api"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/logging"
	"github.com/dyplsq/dyplsq/worker"
)

const (
	tokenName = "shop"
	token     = "shop-token-0123456789abcdef"
)

// env is a real Redis (namespaced), the simulator over HTTP, a worker and
// the API over real HTTP, with every response checked against the
// OpenAPI document.
type env struct {
	t          *testing.T
	ns         string
	live, bulk string
	rdb        redis.UniversalClient
	insp       *asynq.Inspector
	sim        *dyplsim.Sim
	simAddr    string
	reg        *prometheus.Registry
	logs       *safebuf.Buffer
	base       string
	oas        *oasChecker
}

func newEnv(t *testing.T, mod func(*api.Config)) *env {
	t.Helper()
	return newEnvOn(t, redistest.Client(t), mod)
}

// newEnvOn is newEnv with the API (and the worker) on rdb.
func newEnvOn(t *testing.T, rdb redis.UniversalClient, mod func(*api.Config)) *env {
	t.Helper()
	e := &env{t: t, ns: redistest.Namespace(t), rdb: rdb, logs: safebuf.Log(t), reg: prometheus.NewRegistry()}
	e.live, e.bulk = e.ns+"-live", e.ns+"-bulk"
	e.insp = asynq.NewInspectorFromRedisClient(e.rdb)
	t.Cleanup(e.cleanupRedis)
	sim, srv, addr, err := dyplsim.Start(dyplsim.Config{Seed: 100, RandSeed: 1}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.sim, e.simAddr = sim, addr
	t.Cleanup(func() { sim.Close(); srv.Close() })
	log, err := logging.New("debug", "json", e.logs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Addr: "127.0.0.1:0", Tokens: []api.Token{{Name: tokenName, Secret: token}}, Rate: 1000, Burst: 1000,
		LiveQueue: e.live, BulkQueue: e.bulk, KeyPrefix: e.ns, Redis: e.rdb, Registry: e.reg, Logger: log}
	if mod != nil {
		mod(&cfg)
	}
	s, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	e.base = "http://" + a
	e.oas = newOASChecker(t)
	return e
}

// startWorker starts a real worker on the env's queues, calling the
// simulator through the real SDK.
func (e *env) startWorker() {
	e.t.Helper()
	cl, err := dypls.New(dypls.Config{Endpoint: "http://" + e.simAddr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret, Timeout: 2 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	log, _ := logging.New("debug", "json", e.logs)
	w, err := worker.New(worker.Config{Queues: map[string]int{e.live: 2, e.bulk: 1}, Concurrency: 8, MaxAttempts: 3,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, SweepInterval: 300 * time.Millisecond,
		KeyPrefix: e.ns, WorkerID: e.ns + "-w1", TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 100 * time.Millisecond,
		HaltProbeMin: 200 * time.Millisecond, HaltProbeMax: time.Second, Logger: log, Registry: e.reg}, e.rdb, cl)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Shutdown)
}

func (e *env) cleanupRedis() {
	ctx := context.Background()
	queues := []string{e.live, e.bulk}
	if all, err := e.insp.Queues(); err == nil {
		for _, q := range all {
			if strings.HasPrefix(q, e.ns+"-") {
				queues = append(queues, q) // shards
			}
		}
	}
	for _, q := range queues {
		_ = e.insp.DeleteQueue(q, true)
		e.rdb.SRem(ctx, "asynq:queues", q)
	}
	for _, pat := range []string{e.ns + ":*", "asynq:{" + e.ns + "-*"} {
		iter := e.rdb.Scan(ctx, 0, pat, 500).Iterator()
		for iter.Next(ctx) {
			e.rdb.Del(ctx, iter.Val())
		}
	}
}

// response is one answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the token (auth "" sends none) and checks the
// answer against the OpenAPI document.
func (e *env) do(method, path, auth string, body []byte, hdr map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.oas.check(req, resp.StatusCode, resp.Header, b)
	return response{resp.StatusCode, resp.Header, b}
}

func bearer(tok string) string { return "Bearer " + tok }

// oasChecker validates the OpenAPI document and every answer against it,
// and remembers which operations and statuses the tests saw.
type oasChecker struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
}

// seen holds the operations and statuses every test saw, for TestMain.
var (
	seenMu sync.Mutex
	seen   = map[string]bool{}
)

func newOASChecker(t *testing.T) *oasChecker {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.Document)
	if err != nil {
		t.Fatalf("the OpenAPI document does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &oasChecker{t: t, doc: doc, router: router}
}

func (c *oasChecker) check(req *http.Request, status int, hdr http.Header, body []byte) {
	c.t.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			c.t.Errorf("%s %s answered %d but is not in the OpenAPI document: %v", req.Method, req.URL.Path, status, err)
		}
		if !strings.Contains(string(body), `"error":{"code":`) {
			c.t.Errorf("%s %s: not the error shape: %s", req.Method, req.URL.Path, body)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: status, Header: hdr,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("%s %s answered %d, not as the OpenAPI document says: %v\n%s", req.Method, req.URL.Path, status, err, body)
	}
	seenMu.Lock()
	seen[route.Method+" "+route.Path] = true
	seenMu.Unlock()
}

// TestMain runs the tests, then, when all of them ran, fails unless every
// operation of the OpenAPI document was requested by one.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		doc, err := openapi3.NewLoader().LoadFromData(api.Document)
		if err != nil {
			panic(err)
		}
		for path, item := range doc.Paths.Map() {
			for method := range item.Operations() {
				if !seen[method+" "+path] {
					fmt.Fprintf(os.Stderr, "FAIL: no test requested %s %s of the OpenAPI document\n", method, path)
					code = 1
				}
			}
		}
	}
	os.Exit(code)
}
