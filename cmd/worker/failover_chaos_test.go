//go:build chaos

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/enqueuecli"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/redisconn"
	"github.com/dyplsq/dyplsq/tasks"
)

// sentinelMaster is the master name the test's sentinels watch.
const sentinelMaster = "dyplsq"

// sentinels starts a primary, a replica of it and three sentinels on
// loopback, and returns the primary and the redis-sentinel:// URL.
func sentinels(t *testing.T) (*redistest.Proc, string) {
	t.Helper()
	primary := redistest.Server(t)
	host, port, _ := strings.Cut(primary.Addr, ":")
	replica := redistest.Server(t, "--replicaof", host, port)
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(rc.Info(context.Background(), "replication").Val(), "master_link_status:up"); {
		if time.Now().After(deadline) {
			t.Fatal("replica never in sync")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var addrs []string
	for i := range 3 {
		p := redistest.FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\nsentinel monitor %s %s %s 2\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n",
			p, dir, filepath.Join(dir, "sentinel.log"), sentinelMaster, host, port, sentinelMaster, sentinelMaster)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("redis-server", conf, "--sentinel")
		if err := cmd.Start(); err != nil {
			t.Fatalf("sentinel %d: %v", i, err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	return primary, "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master=" + sentinelMaster
}

// failoverRun is what one run of the failover scenario saw.
type failoverRun struct {
	acked, lost, refused int
	cliCode              int
	cliOut               string
}

// runFailover runs two workers and an `enqueue --wait` batch through
// Sentinel while a producer enqueues, SIGKILLs the primary mid-batch and
// counts the acknowledged jobs that are gone once every job ended.
func runFailover(t *testing.T, bin string, durable bool) failoverRun {
	primary, url := sentinels(t)
	_, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 400, RandSeed: 1, QPS: 5000, Latency: 5 * time.Millisecond}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ns := redistest.Namespace(t)
	queue := ns + "-live"
	cfg, err := redisconn.ConfigFromEnv(func(k string) string { return map[string]string{"REDIS_URL": url}[k] })
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := redisconn.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ports := []int{redistest.FreePort(t), redistest.FreePort(t)}
	for _, p := range ports {
		startWorker(t, bin, url, simAddr, queue+":1,"+ns+"-bulk", ns, p)
	}
	// The CLI batch, waiting for its rows to end.
	file := filepath.Join(t.TempDir(), "rows.csv")
	var rows strings.Builder
	rows.WriteString("PoolKey,SubsId,PhoneNoX,OperateType,OutId\n")
	for i := 1; i <= 400; i++ {
		b := dyplsim.SeedBinding(i)
		fmt.Fprintf(&rows, "%s,%s,%s,updateOutId,cli-%d\n", b.PoolKey, b.SubsId, b.PhoneNoX, i)
	}
	if err := os.WriteFile(file, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--queue", ns + "-bulk", "--new-queue", "--wait", "--wait-timeout", "150s", "--max-pending", "100"}
	if durable {
		args = append(args, "--durable", "1", "--durable-timeout", "500ms")
	}
	env := map[string]string{"REDIS_URL": url, "DYPLSQ_KEY_PREFIX": ns}
	var cliOut safebuf.Buffer
	cliDone := make(chan int, 1)
	go func() {
		cliDone <- enqueuecli.Run(context.Background(), append(args, file), func(k string) string { return env[k] },
			strings.NewReader(""), &cliOut, &cliOut)
	}()

	// The producer: every enqueue acknowledged is remembered.
	prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb, Queue: queue, KeyPrefix: ns}
	if durable {
		prod.Durable = &tasks.Durability{Replicas: 1, Timeout: 500 * time.Millisecond}
	}
	var (
		mu    sync.Mutex
		acked []string
		run   failoverRun
	)
	stop := make(chan struct{})
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := dyplsim.SeedBinding(500 + i%300)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			res, err := prod.Enqueue(ctx, tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX,
				OperateType: "updateOutId", OutId: fmt.Sprintf("p-%d", i)})
			cancel()
			mu.Lock()
			switch {
			case err == nil:
				acked = append(acked, res.TaskID)
			case errors.Is(err, tasks.ErrNotReplicated):
				run.refused++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	time.Sleep(3 * time.Second)
	primary.Stop() // SIGKILL, mid-batch
	killed := time.Now()
	mu.Lock()
	t.Logf("killed the primary; %d jobs acknowledged so far", len(acked))
	mu.Unlock()
	time.Sleep(6 * time.Second)
	close(stop)
	<-prodDone

	insp := asynq.NewInspectorFromRedisClient(rdb)
	// A job running when the primary died is in the new primary's active
	// list: asynq runs it again once its lease (30 s) expired, at the next
	// recovery pass (every minute).
	deadline := time.Now().Add(120 * time.Second)
	states := map[string]int{}
	pending := acked
	for len(pending) > 0 && time.Now().Before(deadline) {
		var next []string
		clear(states)
		for _, id := range pending {
			info, err := insp.GetTaskInfo(queue, id)
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
				run.lost++
			case err != nil:
				next = append(next, id)
				states["error"]++
			case info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateArchived:
				next = append(next, id)
				states[info.State.String()]++
			}
		}
		pending = next
		if len(pending) > 0 {
			time.Sleep(time.Second)
		}
	}
	if len(pending) > 0 {
		t.Fatalf("%d acknowledged jobs did not end within 120s of the failover: %v", len(pending), states)
	}
	run.acked = len(acked)
	// Rows being run at the failover come back as the acknowledged jobs
	// do (lease, then the recovery pass): up to about 90 s after the kill,
	// however soon the acknowledged ones ended (a loaded machine
	// acknowledges few).
	select {
	case run.cliCode = <-cliDone:
	case <-time.After(max(30*time.Second, time.Until(killed.Add(150*time.Second)))):
		t.Fatalf("enqueue --wait did not end within 150 s of the failover:\n%s", cliOut.String())
	}
	run.cliOut = cliOut.String()
	for _, p := range ports {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("worker on %d not ready after the failover: %v %v", p, err, resp)
		} else {
			resp.Body.Close()
		}
	}
	return run
}

// TestChaosSentinelFailover kills the Sentinel-watched primary mid-batch,
// once in the default mode and once with durable enqueue, and reports how
// many acknowledged jobs the failover lost: some may be lost by default,
// none with durable enqueue. Workers, the CLI's --wait and the monitor
// follow the promoted replica by themselves, and every job ends.
func TestChaosSentinelFailover(t *testing.T) {
	bin := buildWorker(t)
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			t.Parallel() // both within the 3 minutes
			r := runFailover(t, bin, durable)
			t.Logf("durable=%v: %d jobs acknowledged, %d lost by the failover, %d refused as unconfirmed; enqueue --wait exit %d",
				durable, r.acked, r.lost, r.refused, r.cliCode)
			if r.acked < 5 {
				// A loaded machine (make chaos runs suites side by side)
				// acknowledged 9 in the 3 s before the kill once.
				t.Errorf("only %d jobs acknowledged: the scenario did not run", r.acked)
			}
			if durable && r.lost > 0 {
				t.Errorf("durable enqueue lost %d acknowledged jobs", r.lost)
			}
			if !durable && r.lost > r.acked/10 {
				t.Errorf("default mode lost %d of %d: more than a failover's replication lag explains", r.lost, r.acked)
			}
			if r.cliCode > 1 {
				t.Errorf("enqueue --wait ended with exit %d, want 0 or 1 (rows unconfirmed or dead):\n%s", r.cliCode, r.cliOut)
			}
		})
	}
}
