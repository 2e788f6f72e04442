//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/tasks"
)

type proc struct {
	cmd    *exec.Cmd
	stderr *safebuf.Buffer // written by exec's copying goroutine, read by the test
}

func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func startWorker(t *testing.T, bin, redisURL, simAddr, queue, prefix string, port int) *proc {
	t.Helper()
	cmd := exec.Command(bin, "--queues", queue+":1", "--monitor-addr", fmt.Sprintf("127.0.0.1:%d", port), "--timeout", "3s")
	cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL, "DYPLS_ENDPOINT=http://"+simAddr, "DYPLSQ_KEY_PREFIX="+prefix,
		"ALIBABA_CLOUD_ACCESS_KEY_ID="+dyplsim.DefaultAccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+dyplsim.DefaultAccessKeySecret)
	p := &proc{cmd: cmd, stderr: &safebuf.Buffer{}}
	cmd.Stderr = p.stderr
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	return p
}

func waitAll(t *testing.T, insp *asynq.Inspector, queue string, ids []string, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := map[string]int{}
		done := 0
		for _, id := range ids {
			info, err := insp.GetTaskInfo(queue, id)
			if err != nil {
				continue
			}
			switch info.State {
			case asynq.TaskStateCompleted:
				var r struct{ Outcome string }
				_ = json.Unmarshal(info.Result, &r)
				out[r.Outcome]++
				done++
			case asynq.TaskStateArchived:
				out["dead"]++
				done++
			}
		}
		if done == len(ids) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs ended after %s: %v", done, len(ids), timeout, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestChaosWorkerKilledMidCall kills a worker with SIGKILL while its calls
// are in flight. asynq recovers the jobs after their lease; the next
// attempt knows the previous outcome is unknown. Every job ends applied.
func TestChaosWorkerKilledMidCall(t *testing.T) {
	bin := buildWorker(t)
	sim, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 40, RandSeed: 1, Latency: time.Second}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	redisURL := redistest.URL(t)
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	queue := ns + "-live"
	prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb, Queue: queue, KeyPrefix: ns}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	defer func() { _ = insp.DeleteQueue(queue, true); rdb.SRem(context.Background(), "asynq:queues", queue) }()
	var ids []string
	for i := 1; i <= 30; i++ {
		b := dyplsim.SeedBinding(i)
		r, err := prod.Enqueue(context.Background(), tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX,
			OperateType: "updateNoB", PhoneNoB: fmt.Sprintf("1390000%04d", 5000+i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.TaskID)
	}
	w1 := startWorker(t, bin, redisURL, simAddr, queue, ns, redistest.FreePort(t))
	deadline := time.Now().Add(20 * time.Second)
	for {
		q, err := insp.GetQueueInfo(queue)
		if err == nil && q.Active > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job became active\n%s", w1.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if err := w1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = w1.cmd.Wait()
	t.Logf("killed the worker with calls in flight; applied so far: %d", sim.Stats().Applied)

	startWorker(t, bin, redisURL, simAddr, queue, ns, redistest.FreePort(t))
	out := waitAll(t, insp, queue, ids, 4*time.Minute)
	if out["dead"] > 0 || out["applied"] != len(ids) {
		t.Fatalf("after the crash: %v", out)
	}
	for i := 1; i <= 30; i++ {
		b, _ := sim.Binding(dyplsim.SeedBinding(i).SubsId)
		if want := fmt.Sprintf("1390000%04d", 5000+i); b.PhoneNoB != want {
			t.Errorf("binding %d holds B %s, want %s", i, b.PhoneNoB, want)
		}
	}
}

// TestChaosRedisOutage stops Redis under a running worker: /readyz says
// why, nothing is lost, and the work goes on when Redis is back.
func TestChaosRedisOutage(t *testing.T) {
	bin := buildWorker(t)
	// Persistent, as production Redis must be: a restart keeps the queues.
	red := redistest.Server(t, "--appendonly", "yes", "--appendfsync", "always")
	sim, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 60, RandSeed: 1, Latency: 50 * time.Millisecond}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: red.Addr})
	defer client.Close()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: red.Addr})
	defer insp.Close()
	queue := "outage"
	enqueue := func(from, to int) (ids []string) {
		for i := from; i <= to; i++ {
			b := dyplsim.SeedBinding(i)
			task, err := tasks.NewTask(tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: "updateOutId", OutId: "o"},
				asynq.Queue(queue))
			if err != nil {
				t.Fatal(err)
			}
			info, err := client.EnqueueContext(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, info.ID)
		}
		return ids
	}
	ids := enqueue(1, 30)
	port := redistest.FreePort(t)
	w := startWorker(t, bin, red.URL(), simAddr, queue, "dyplsq", port)
	time.Sleep(time.Second)
	red.Stop()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 503 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported the outage\n%s", w.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	red.Start()
	ids = append(ids, enqueue(31, 60)...)
	out := waitAll(t, insp, queue, ids, 3*time.Minute)
	if out["dead"] > 0 || out["applied"] != len(ids) {
		t.Fatalf("after the outage: %v\n%s", out, w.stderr.String())
	}
	if sim.Stats().Applied < len(ids) {
		t.Fatalf("simulator applied %d, want %d", sim.Stats().Applied, len(ids))
	}
}
