package enqueuecli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/logging"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestBenchBoundedMemory runs a batch of ENQUEUE_BENCH_MEMORY_ROWS rows
// (200000 for the figure in BENCHMARKS.md; 3,000 by default, so the code
// stays tested) through an in-process worker and the simulator on a
// private redis-server with maxmemory 64mb and noeviction, with the
// default --max-pending. In the middle of the batch it enqueues one live
// update and times it to applied. It prints the peak used_memory, Redis
// memory per queued row (a file queued with --max-pending 0 and no worker)
// and per finished row:
//
//	ENQUEUE_BENCH_MEMORY_ROWS=200000 go test -run TestBenchBoundedMemory -v -timeout 30m ./enqueuecli/
func TestBenchBoundedMemory(t *testing.T) {
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("ENQUEUE_BENCH_MEMORY_ROWS")); err == nil && v > 0 {
		n = v
	}
	srv := redistest.Server(t, "--maxmemory", "64mb", "--maxmemory-policy", "noeviction")
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 64})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	mem := func() int64 {
		info, _ := rdb.Info(ctx, "memory").Result()
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
				m, _ := strconv.ParseInt(v, 10, 64)
				return m
			}
		}
		return 0
	}
	getenv := func(k string) string {
		if k == "REDIS_URL" {
			return srv.URL()
		}
		return ""
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Run(ctx, args, getenv, strings.NewReader(""), &out, &errb)
		return code, out.String() + errb.String()
	}

	// Memory per queued row, without a window: a small file, no worker.
	const q0 = 2000
	small := filepath.Join(t.TempDir(), "small.csv")
	writeRows(t, small, q0)
	before := mem()
	if code, out := run("--queue", "mem-queued", "--new-queue", "--max-pending", "0", small); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	perQueued := float64(mem()-before) / q0
	if err := asynq.NewInspectorFromRedisClient(rdb).DeleteQueue("mem-queued", true); err != nil {
		t.Fatal(err)
	}

	sim, simSrv, addr, err := dyplsim.Start(dyplsim.Config{Seed: n + 1, RandSeed: 1}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(); simSrv.Close() })
	api, err := dypls.New(dypls.Config{Endpoint: "http://" + addr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	log, _ := logging.New("warn", "json", os.Stderr)
	w, err := worker.New(worker.Config{Queues: map[string]int{tasks.DefaultLiveQueue: 6, tasks.DefaultBulkQueue: 1}, Concurrency: 50,
		TaskCheckInterval: 10 * time.Millisecond, Logger: log}, rdb, api)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if m := mem(); m > peak.Load() {
				peak.Store(m)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	// The live update, when half the batch has ended.
	store := &batch.Store{Redis: rdb}
	var liveLatency atomic.Int64
	go func() {
		for {
			l, err := store.List(ctx, 1)
			if err == nil && len(l) == 1 && l[0].Ended() >= int64(n/2) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		b := dyplsim.SeedBinding(n + 1)
		prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb}
		start := time.Now()
		r, err := prod.Enqueue(ctx, tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: "updateNoA", PhoneNoA: "13900000001"})
		if err != nil {
			t.Error(err)
			return
		}
		insp := asynq.NewInspectorFromRedisClient(rdb)
		for time.Since(start) < time.Minute {
			if info, err := insp.GetTaskInfo(tasks.DefaultLiveQueue, r.TaskID); err == nil && info.State == asynq.TaskStateCompleted {
				liveLatency.Store(int64(time.Since(start)))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	big := filepath.Join(t.TempDir(), "big.csv")
	writeRows(t, big, n)
	base := mem()
	start := time.Now()
	code, out := run("--wait", big)
	wall := time.Since(start)
	close(stop)
	<-sampled
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	l, err := store.List(ctx, 1)
	if err != nil || len(l) != 1 || l[0].Applied != int64(n) {
		t.Fatalf("batch %+v, %v", l, err)
	}
	if liveLatency.Load() == 0 {
		t.Fatal("the live update was not applied within a minute")
	}
	perFinished := float64(mem()-base) / float64(n)
	// Where a finished row's bytes are: its binding's fence (one per
	// binding, here one per row) and the batch record.
	fence, _ := rdb.MemoryUsage(ctx, "dyplsq:{"+dyplsim.SeedBinding(1).SubsId+"}:fence").Result()
	id := l[0].ID
	var rec int64
	for _, k := range []string{store.Key(id), store.RowsKey(id), store.VersionsKey(id)} {
		m, _ := rdb.MemoryUsage(ctx, k).Result()
		rec += m
	}
	for b := 0; b <= (n+1)/batch.BucketLines; b++ {
		m, _ := rdb.MemoryUsage(ctx, store.BucketKey(id, b)).Result()
		rec += m
	}
	t.Logf("\n| rows | wall | jobs/s | peak used_memory | per queued row | per finished row (its binding's fence + batch record) | live update to applied |\n|---|---|---|---|---|---|---|\n"+
		"| %d | %s | %.0f | %.1f MiB | %.0f B | %.0f B (%d B + %.0f B) | %s |",
		n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(), float64(peak.Load())/(1<<20), perQueued, perFinished,
		fence, float64(rec)/float64(n), time.Duration(liveLatency.Load()).Round(time.Millisecond))
}
