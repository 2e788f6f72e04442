//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// restartFields is how many binding fields (the OutId of seed bindings
// 1..restartFields) the AOF restart test updates, so that each gets many
// versions.
const restartFields = 40

// ackedJob is one enqueue the producer got an OK for.
type ackedJob struct {
	taskID, value string
	at            time.Time
}

// endedTask is a task of the queue found completed after the restart.
type endedTask struct {
	id, subs, value string
	result          worker.Result
}

// restartProducer enqueues updates of the OutId of the first restartFields
// seed bindings, each with a value of its own, until stop is closed, and
// remembers every acknowledged enqueue.
func restartProducer(prod *tasks.Producer, stop <-chan struct{}) (func() []ackedJob, chan struct{}) {
	var (
		mu    sync.Mutex
		acked []ackedJob
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := dyplsim.SeedBinding(1 + i%restartFields)
			v := fmt.Sprintf("aof-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			res, err := prod.Enqueue(ctx, tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX,
				OperateType: "updateOutId", OutId: v})
			cancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			mu.Lock()
			acked = append(acked, ackedJob{taskID: res.TaskID, value: v, at: time.Now()})
			mu.Unlock()
			time.Sleep(4 * time.Millisecond)
		}
	}()
	return func() []ackedJob {
		mu.Lock()
		defer mu.Unlock()
		return append([]ackedJob(nil), acked...)
	}, done
}

// completedTasks lists every completed task of queue with its result.
func completedTasks(t *testing.T, insp *asynq.Inspector, queue string) map[string]endedTask {
	t.Helper()
	out := map[string]endedTask{}
	for page := 1; ; page++ {
		infos, err := insp.ListCompletedTasks(queue, asynq.PageSize(1000), asynq.Page(page))
		if err != nil {
			t.Fatalf("list completed tasks: %v", err)
		}
		for _, ti := range infos {
			var p struct{ SubsId, OutId string }
			_ = json.Unmarshal(ti.Payload, &p)
			e := endedTask{id: ti.ID, subs: p.SubsId, value: p.OutId}
			if err := json.Unmarshal(ti.Result, &e.result); err != nil {
				t.Errorf("task %s completed with result %q: %v", ti.ID, ti.Result, err)
			}
			out[e.value] = e
		}
		if len(infos) < 1000 {
			return out
		}
	}
}

// aofSizes samples the size of the AOF file that Redis appends to (the one
// incr file of its appendonlydir) every 20 ms until stop is closed.
type aofSizes struct {
	mu      sync.Mutex
	at      []time.Time
	size    []int64
	file    string
	stopped chan struct{}
}

func sampleAOF(t *testing.T, dir string, stop <-chan struct{}) *aofSizes {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	if err != nil || len(files) != 1 {
		t.Fatalf("want one AOF incr file in %s: %v %v", dir, files, err)
	}
	a := &aofSizes{file: files[0], stopped: make(chan struct{})}
	go func() {
		defer close(a.stopped)
		for {
			if fi, err := os.Stat(a.file); err == nil {
				a.mu.Lock()
				a.at, a.size = append(a.at, time.Now()), append(a.size, fi.Size())
				a.mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return a
}

// cutTo truncates the AOF to the size it had at the time given, as a crash
// of the machine leaves it when its last fsync was then; it returns the
// bytes cut.
func (a *aofSizes) cutTo(t *testing.T, at time.Time) int64 {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var keep int64 = -1
	for i, ts := range a.at {
		if !ts.After(at) {
			keep = a.size[i]
		}
	}
	fi, err := os.Stat(a.file)
	if keep < 0 || err != nil {
		t.Fatalf("no size of %s sampled before %s: %v", a.file, at.Format("15:04:05.000"), err)
	}
	if err := os.Truncate(a.file, keep); err != nil {
		t.Fatal(err)
	}
	return fi.Size() - keep
}

// restartRun is what one restart of Redis cost.
type restartRun struct {
	acked, before, recent, lost, goneApplied int
	cut                                      int64
}

// TestChaosRedisRestartAOF restarts a Redis that persists with AOF and
// appendfsync everysec while a producer enqueues and a worker runs jobs:
// once after a SIGKILL of redis-server (the process dies, the machine
// lives: what Redis had written to the AOF is in the OS and survives), and
// once after a SIGKILL whose AOF is then cut back to its size 1 s before,
// as a crash of the machine leaves it when the last fsync was 1 s before.
// Each reports how many acknowledged enqueues are in no state afterwards and
// were never applied (lost), and how many calls set a value twice; each
// checks what must hold whatever Redis lost: every job left ends, none dead,
// and each field holds the value of the newest version that ended applied,
// no call having applied an older version after a newer one ended applied.
func TestChaosRedisRestartAOF(t *testing.T) {
	bin := buildWorker(t)
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "sigkill", true: "machine-crash"}[crash]
		t.Run(name, func(t *testing.T) {
			t.Parallel() // both within the 3 minutes
			r := runRestart(t, bin, crash)
			t.Logf("AOF everysec, %s: %d jobs acknowledged (%d before the kill), %d lost (in no state and never applied), "+
				"%d gone from Redis but applied at the simulator; %d bytes of AOF cut; bound: %d acknowledged in the 2 s before the kill",
				name, r.acked, r.before, r.lost, r.goneApplied, r.cut, r.recent)
			if r.before < 100 {
				t.Errorf("only %d jobs acknowledged before the kill: the scenario did not run", r.before)
			}
			if r.lost > r.recent {
				t.Errorf("%d acknowledged jobs lost: more than the %d acknowledged in the last 2 s before the kill, which is all AOF everysec may lose", r.lost, r.recent)
			}
			if crash && r.cut == 0 {
				t.Error("nothing was cut from the AOF: the crash lost nothing to measure")
			}
		})
	}
}

// runRestart runs one restart scenario and checks what must hold.
func runRestart(t *testing.T, bin string, crash bool) restartRun {
	red := redistest.Server(t, "--appendonly", "yes", "--appendfsync", "everysec")
	var (
		applyMu sync.Mutex
		applied []dyplsim.Applied
	)
	sim, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: restartFields, RandSeed: 1, QPS: 5000, Latency: 5 * time.Millisecond,
		OnApply: func(a dyplsim.Applied) { applyMu.Lock(); applied = append(applied, a); applyMu.Unlock() }}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rdb := redis.NewClient(&redis.Options{Addr: red.Addr})
	defer rdb.Close()
	queue := "aof"
	port := redistest.FreePort(t)
	w := startWorker(t, bin, red.URL(), simAddr, queue, "dyplsq", port)
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker never ready\n%s", w.stderr.String())
		}
	}

	prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb, Queue: queue}
	stop := make(chan struct{})
	sizes := sampleAOF(t, red.Dir, stop)
	ackedSoFar, prodDone := restartProducer(prod, stop)
	time.Sleep(3 * time.Second)
	red.Stop() // SIGKILL mid-batch: no shutdown, no last fsync
	killedAt := time.Now()
	var run restartRun
	if crash {
		run.cut = sizes.cutTo(t, killedAt.Add(-time.Second))
	}
	before := ackedSoFar()
	run.before = len(before)
	for _, a := range before {
		if a.at.After(killedAt.Add(-2 * time.Second)) {
			run.recent++
		}
	}
	t.Logf("SIGKILLed Redis with %d jobs acknowledged, %d of them in the last 2 s; applied so far: %d", len(before), run.recent, sim.Stats().Applied)
	time.Sleep(time.Second)
	red.Start() // same port, directory and AOF settings
	time.Sleep(2 * time.Second)
	close(stop)
	<-prodDone
	<-sizes.stopped
	acked := ackedSoFar()
	run.acked = len(acked)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	defer insp.Close()
	run.lost, run.goneApplied = waitRestartEnded(t, rdb, insp, queue, acked, &applyMu, &applied, w)
	if q, err := insp.GetQueueInfo(queue); err != nil || q.Archived > 0 {
		t.Errorf("queue after the restart: %+v, %v; want no dead job", q, err)
	}
	applyMu.Lock()
	log := append([]dyplsim.Applied(nil), applied...)
	applyMu.Unlock()
	checkRestartNewestWins(t, sim, completedTasks(t, insp, queue), log)
	return run
}

// waitRestartEnded waits until every acknowledged job either ended
// (completed or archived) or is gone from Redis, and every other task of
// the queue ended too, then returns how many acknowledged jobs are gone and
// were never applied (lost), and how many are gone but were applied.
func waitRestartEnded(t *testing.T, rdb *redis.Client, insp *asynq.Inspector, queue string, acked []ackedJob, applyMu *sync.Mutex,
	applied *[]dyplsim.Applied, w *proc) (lost, goneApplied int) {
	t.Helper()
	stubs := 0
	defer func() {
		if stubs > 0 {
			t.Logf("%d acknowledged jobs gone but for a task key holding only their result, written by the worker that ran them", stubs)
		}
	}()
	// A job picked up before the cut and lost from Redis after it comes
	// back only through asynq's recovery: a 30 s lease, a further 30 s
	// before the recoverer takes expired leases, and a recoverer that runs
	// once a minute, so up to about two minutes, then a retry delay, an
	// AmbiguousHold and a poll. None of asynq's parts can be configured.
	deadline := time.Now().Add(200 * time.Second)
	pending := acked
	var gone []ackedJob
	states := map[string]int{}
	for len(pending) > 0 {
		var next []ackedJob
		clear(states)
		for _, a := range pending {
			info, err := insp.GetTaskInfo(queue, a.taskID)
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
				gone = append(gone, a)
			case err != nil && !rdb.HExists(context.Background(), "asynq:{"+queue+"}:t:"+a.taskID, "msg").Val():
				// The enqueue was lost, but a worker had run the job and
				// wrote its result: a task key holding only that.
				gone = append(gone, a)
				stubs++
			case err != nil:
				next = append(next, a)
				states[err.Error()]++
			case info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateArchived:
				next = append(next, a)
				states[info.State.String()]++
			}
		}
		pending = next
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged jobs did not end within 200 s of the restart: %v\n%s", len(pending), states, w.stderr.String())
		}
		time.Sleep(time.Second)
	}
	for {
		q, err := insp.GetQueueInfo(queue)
		if err == nil && q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still open in the queue 120 s after the restart: %+v, %v", q, err)
		}
		time.Sleep(time.Second)
	}
	applyMu.Lock()
	seen := map[string]bool{}
	for _, a := range *applied {
		seen[a.Value] = true
	}
	applyMu.Unlock()
	for _, a := range gone {
		if seen[a.value] {
			goneApplied++
		} else {
			lost++
		}
	}
	return lost, goneApplied
}

// checkRestartNewestWins checks, per field, that the simulator holds the
// value of the highest version that ended applied, and that no call applied
// a version after a newer one had ended applied; it reports the values the
// simulator set more than once, and those set again after another value
// came in between (a second run with a visible effect).
func checkRestartNewestWins(t *testing.T, sim *dyplsim.Sim, ended map[string]endedTask, log []dyplsim.Applied) {
	t.Helper()
	count := map[string]int{}
	last := map[string]string{} // SubsId → the value applied last
	twice, visible := 0, 0
	for _, a := range log {
		if count[a.Value] > 0 && last[a.SubsId] != a.Value {
			visible++
			t.Logf("%s: %s applied again after another value", a.SubsId, a.Value)
		}
		if count[a.Value]++; count[a.Value] == 2 {
			twice++
		}
		last[a.SubsId] = a.Value
	}
	t.Logf("%d calls in all; %d values set more than once, %d of them again after another value of the field", len(log), twice, visible)
	best := map[string]endedTask{}
	for _, e := range ended {
		if e.result.Outcome == worker.OutcomeApplied && e.result.Version > best[e.subs].result.Version {
			best[e.subs] = e
		}
	}
	for i := 1; i <= restartFields; i++ {
		sb := dyplsim.SeedBinding(i)
		b, _ := sim.Binding(sb.SubsId)
		want, ok := best[sb.SubsId]
		switch _, isJob := ended[b.OutId]; {
		case !ok:
			t.Errorf("%s: no job of the field ended applied", sb.SubsId)
		case b.OutId != want.value && isJob:
			t.Errorf("%s holds %s (version %d), want %s (version %d), the newest that ended applied",
				sb.SubsId, b.OutId, ended[b.OutId].result.Version, want.value, want.result.Version)
		case b.OutId != want.value:
			t.Logf("%s holds %s, of a job gone from Redis, not %s (version %d)", sb.SubsId, b.OutId, want.value, want.result.Version)
		}
	}
	for _, a := range log {
		e, ok := ended[a.Value]
		if !ok || e.result.Version == 0 {
			continue
		}
		for _, d := range ended {
			if d.subs == a.SubsId && d.result.Outcome == worker.OutcomeApplied && d.result.Version > e.result.Version && d.result.At.Before(a.At) {
				t.Errorf("%s: the call of version %d applied at %s, after version %d had ended applied at %s",
					a.SubsId, e.result.Version, a.At.Format("15:04:05.000"), d.result.Version, d.result.At.Format("15:04:05.000"))
				break
			}
		}
	}
}
