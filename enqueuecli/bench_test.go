package enqueuecli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/tasks"
)

// writeRows writes a CSV of n valid rows to path without holding it in
// memory.
func writeRows(t testing.TB, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "FC100000000000001,%d,170%08d,updateNoA,137%08d\n", 1_000_000_000_000_000+i, (i-1)%100_000_000, (i-1)%100_000_000)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBenchMillionRows queues a generated file of ENQUEUE_BENCH_ROWS rows
// (1000000 for the figure in BENCHMARKS.md) with the built binary against a
// private redis-server, then enqueues as many tasks with bare asynq
// Client.Enqueue at the same concurrency on the same server, and prints
// rows/s of both, the ratio, the binary's peak RSS and the Redis memory of
// the batch record. Without ENQUEUE_BENCH_ROWS it runs a quick 5,000-row
// version, so the measurement code itself stays tested:
//
//	ENQUEUE_BENCH_ROWS=1000000 go test -run TestBenchMillionRows -v -timeout 30m ./enqueuecli/
//
// ENQUEUE_BENCH_CONCURRENCY sets the concurrency of both (default the
// command's default).
func TestBenchMillionRows(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ENQUEUE_BENCH_ROWS"))
	if n <= 0 {
		n = 5000
	}
	conc := defaultConcurrency
	if c, err := strconv.Atoi(os.Getenv("ENQUEUE_BENCH_CONCURRENCY")); err == nil && c > 0 {
		conc = c
	}
	srv := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: conc + 8})
	defer rdb.Close()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rows.csv")
	writeRows(t, path, n)
	fi, _ := os.Stat(path)

	// dyplsq: the built binary.
	bin := binary(t)
	// No worker runs: --max-pending 0 queues every row at once, as bare
	// asynq does.
	cmd := exec.Command(bin, "--queue", "bench-enqueue", "--new-queue", "--max-pending", "0", "--concurrency", strconv.Itoa(conc), path)
	cmd.Env = append(os.Environ(), "REDIS_URL="+srv.URL(), "REDIS_CLUSTER_ADDRS=", "DYPLSQ_KEY_PREFIX=bench")
	var errb strings.Builder
	cmd.Stderr = &errb
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errb.String())
	}
	c := counts(t, result{stdout: string(out)})
	if c[2] != n {
		t.Fatalf("queued %d of %d:\n%s", c[2], n, out)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	id := batchID(t, result{stdout: string(out)})
	store := &batch.Store{Redis: rdb, Prefix: "bench"}
	var recBytes int64
	for _, k := range []string{store.Key(id), store.RowsKey(id), store.VersionsKey(id)} {
		m, _ := rdb.MemoryUsage(ctx, k).Result()
		recBytes += m
	}
	mem := func() int64 {
		info, _ := rdb.Info(ctx, "memory").Result()
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	redisAfterOurs := mem()

	// Bare asynq: Client.Enqueue of n tasks of the same size from conc
	// goroutines on one client.
	if _, err := asynq.NewInspectorFromRedisClient(rdb).DeleteAllPendingTasks("bench-enqueue"); err != nil {
		t.Fatal(err)
	}
	u := tasks.Update{PoolKey: "FC100000000000001", SubsId: "1000000000000001", PhoneNoX: "17000000000", OperateType: "updateNoA",
		PhoneNoA: "13700000000", Meta: &tasks.Meta{Schema: 1, Version: 1234567, EnqueuedAt: time.Now().UTC(), Batch: id, Line: 123456, Source: "cli"}}
	task, err := tasks.NewTask(u)
	if err != nil {
		t.Fatal(err)
	}
	payload := task.Payload()
	client := asynq.NewClientFromRedisClient(rdb)
	var next atomic.Int64
	var wg sync.WaitGroup
	start = time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := client.Enqueue(asynq.NewTask(tasks.TypeUpdateSubscription, payload), asynq.Queue("bench-bare")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	bare := time.Since(start)

	ours := float64(n) / wall.Seconds()
	base := float64(n) / bare.Seconds()
	t.Logf("\n| what | rows | concurrency | wall | rows/s | peak RSS |\n|---|---|---|---|---|---|\n"+
		"| enqueue CLI (validate + queue + batch record), built binary | %d | %d | %s | %.0f | %.1f MiB |\n"+
		"| bare asynq Client.Enqueue, same Redis, same run | %d | %d | %s | %.0f | - |\n"+
		"ratio CLI/bare: %.2f; CLI queue pass alone: %s; CLI CPU %s; input %.1f MiB; batch record %.1f MiB in Redis (%.1f bytes/row, before workers report); Redis used_memory after the CLI %.0f MiB",
		n, conc, wall.Round(time.Millisecond), ours, float64(rss)/1024,
		n, conc, bare.Round(time.Millisecond), base,
		ours/base, strings.TrimSpace(strings.SplitN(strings.SplitN(string(out), "rows/s", 2)[0], ";", 2)[1])+" rows/s", cpu.Round(time.Millisecond),
		float64(fi.Size())/(1<<20), float64(recBytes)/(1<<20), float64(recBytes)/float64(n), float64(redisAfterOurs)/(1<<20))
}

// BenchmarkEnqueue queues b.N rows in-process through Run, on REDIS_URL, in
// a queue and key prefix of its own.
func BenchmarkEnqueue(b *testing.B) {
	url := redistest.URL(b)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ns := redistest.Namespace(b)
	queue := ns + "-bench"
	path := filepath.Join(b.TempDir(), "rows.csv")
	writeRows(b, path, b.N)
	env := func(k string) string {
		switch k {
		case "REDIS_URL":
			return url
		case "DYPLSQ_KEY_PREFIX":
			return ns
		}
		return ""
	}
	defer func() {
		_ = asynq.NewInspectorFromRedisClient(rdb).DeleteQueue(queue, true)
		iter := rdb.Scan(context.Background(), 0, ns+":*", 1000).Iterator()
		for iter.Next(context.Background()) {
			rdb.Del(context.Background(), iter.Val())
		}
	}()
	b.ResetTimer()
	var out, errb safebuf.Buffer
	if code := Run(context.Background(), []string{"--queue", queue, "--new-queue", path}, env, strings.NewReader(""), &out, &errb); code != 0 {
		b.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
