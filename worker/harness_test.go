package worker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/logging"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// env is one end-to-end set-up: a real Redis (namespaced), the simulator
// over HTTP, the real SDK through dypls, and a worker.
type env struct {
	t       *testing.T
	ctx     context.Context
	ns      string
	queue   string
	rdb     redis.UniversalClient
	sim     *dyplsim.Sim
	simSrv  *http.Server
	simAddr string
	api     *dypls.Client
	prod    *tasks.Producer
	insp    *asynq.Inspector
	dlq     *deadletter.Store
	logs    *safebuf.Buffer
	reg     *prometheus.Registry
	cfg     worker.Config
	w       *worker.Worker
}

func newEnv(t *testing.T, simCfg dyplsim.Config, mod func(*worker.Config)) *env {
	t.Helper()
	e := newEnvOn(t, redistest.Client(t), simCfg, mod)
	t.Cleanup(e.cleanupRedis)
	return e
}

// newEnvOn builds an env on the given Redis (a private one, or a cluster),
// which the caller cleans up.
func newEnvOn(t *testing.T, rdb redis.UniversalClient, simCfg dyplsim.Config, mod func(*worker.Config)) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), ns: redistest.Namespace(t), rdb: rdb, logs: safebuf.Log(t)}
	e.queue = e.ns + "-live"
	if simCfg.Seed == 0 {
		simCfg.Seed = 20
	}
	if simCfg.RandSeed == 0 {
		simCfg.RandSeed = 1
	}
	sim, srv, addr, err := dyplsim.Start(simCfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.sim, e.simSrv, e.simAddr = sim, srv, addr
	t.Cleanup(func() { sim.Close(); srv.Close() })
	e.api, err = dypls.New(dypls.Config{Endpoint: "http://" + addr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.api.Close)
	client := asynq.NewClientFromRedisClient(e.rdb)
	e.prod = &tasks.Producer{Client: client, Redis: e.rdb, Queue: e.queue, KeyPrefix: e.ns}
	e.insp = asynq.NewInspectorFromRedisClient(e.rdb)
	e.dlq = &deadletter.Store{Redis: e.rdb, Prefix: e.ns}
	e.cfg = worker.Config{
		Queues:                   map[string]int{e.queue: 1},
		Concurrency:              10,
		MaxAttempts:              5,
		BackoffBase:              20 * time.Millisecond,
		BackoffMax:               200 * time.Millisecond,
		ThrottleDelay:            100 * time.Millisecond,
		HaltProbeMin:             200 * time.Millisecond,
		HaltProbeMax:             time.Second,
		HaltWait:                 500 * time.Millisecond,
		SweepInterval:            500 * time.Millisecond,
		KeyPrefix:                e.ns,
		WorkerID:                 e.ns + "-w1",
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(&e.cfg)
	}
	return e
}

// newStartedEnv is newEnv with the simulator's and the worker's test
// settings unchanged, and its worker started.
func newStartedEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, dyplsim.Config{}, nil)
	e.start()
	return e
}

// start starts a worker with the env's config.
func (e *env) start() *worker.Worker {
	e.t.Helper()
	cfg := e.cfg
	log, err := logging.New("debug", "json", e.logs)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Logger = log
	e.reg = prometheus.NewRegistry()
	cfg.Registry = e.reg
	w, err := worker.New(cfg, e.rdb, e.api)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.w = w
	e.t.Cleanup(w.Shutdown)
	return w
}

func (e *env) cleanupRedis() {
	ctx := context.Background()
	// The queue and its shards, if a test split it ("<queue>.<i>…").
	queues := []string{e.queue}
	if all, err := e.rdb.SMembers(ctx, "asynq:queues").Result(); err == nil {
		for _, q := range all {
			if strings.HasPrefix(q, e.queue+".") {
				queues = append(queues, q)
			}
		}
	}
	pats := []string{e.ns + ":*"}
	for _, q := range queues {
		_ = e.insp.DeleteQueue(q, true)
		pats = append(pats, "asynq:{"+q+"}:*")
	}
	for _, pat := range pats {
		iter := e.rdb.Scan(ctx, 0, pat, 500).Iterator()
		for iter.Next(ctx) {
			e.rdb.Del(ctx, iter.Val())
		}
	}
	for _, q := range queues {
		e.rdb.SRem(ctx, "asynq:queues", q)
	}
}

// seed returns sample binding i as the base of an update.
func seed(i int, op string) tasks.Update {
	b := dyplsim.SeedBinding(i)
	return tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: op}
}

// outIDUpdate returns an updateOutId of sample binding i to outID.
func outIDUpdate(i int, outID string) tasks.Update {
	u := seed(i, "updateOutId")
	u.OutId = outID
	return u
}

func (e *env) enqueue(u tasks.Update) string {
	e.t.Helper()
	r, err := e.prod.Enqueue(e.ctx, u)
	if err != nil {
		e.t.Fatalf("enqueue: %v", err)
	}
	return r.TaskID
}

// waitState waits until the task reaches one of the states and returns it.
func (e *env) waitState(id string, timeout time.Duration, states ...asynq.TaskState) *asynq.TaskInfo {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *asynq.TaskInfo
	for time.Now().Before(deadline) {
		info, err := e.insp.GetTaskInfo(e.queue, id)
		if err == nil {
			last = info
			for _, s := range states {
				if info.State == s {
					return info
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if last != nil {
		logs := e.logs.String()
		if len(logs) > 8000 {
			logs = "…" + logs[len(logs)-8000:]
		}
		e.t.Fatalf("task %s: state %v after %s, want %v (last error %q)\nlogs:\n%s", id, last.State, timeout, states, last.LastErr, logs)
	}
	e.t.Fatalf("task %s not found after %s", id, timeout)
	return nil
}

func result(t *testing.T, info *asynq.TaskInfo) worker.Result {
	t.Helper()
	var r worker.Result
	if err := json.Unmarshal(info.Result, &r); err != nil {
		t.Fatalf("result %q: %v", info.Result, err)
	}
	return r
}

func (e *env) deadRecord(id string) deadletter.Record {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r, ok, err := e.dlq.Get(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if ok {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no dead-letter record for %s", id)
	return deadletter.Record{}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}
