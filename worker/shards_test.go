package worker_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestWorkerSplitsAQueueIntoShards: WORKER_SHARDS splits a queue; the
// split is kept in Redis, where a worker without the setting follows it;
// the weights keep the queue's share; jobs routed to every shard, and to
// the queue itself, are applied.
func TestWorkerSplitsAQueueIntoShards(t *testing.T) {
	e := newEnv(t, dyplsim.Config{Seed: 60}, func(c *worker.Config) {
		c.Queues = map[string]int{c.KeyPrefix + "-live": 3, c.KeyPrefix + "-other": 2}
		c.Shards = map[string]int{c.KeyPrefix + "-live": 3}
	})
	other := e.ns + "-other"
	t.Cleanup(func() { _ = e.insp.DeleteQueue(other, true); e.rdb.SRem(e.ctx, "asynq:queues", other) })
	w := e.start()

	l := tasks.Layout{Queue: e.queue, Shards: 3}
	want := map[string]int{other: 2 * 4}
	for _, q := range l.Names() {
		want[q] = 3
	}
	if got := w.Queues(); !maps.Equal(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	if got, err := tasks.ReadLayout(e.ctx, e.rdb, e.ns, e.queue); err != nil || got.Shards != 3 {
		t.Fatalf("layout in Redis %+v %v", got, err)
	}

	// A second worker, with no WORKER_SHARDS, serves the same shards.
	e2 := *e
	e2.cfg.Shards = nil
	e2.cfg.WorkerID = e.ns + "-w2"
	if got := e2.start().Queues(); !maps.Equal(got, want) {
		t.Fatalf("second worker served %v, want %v", got, want)
	}

	var ids []string
	for i := 1; i <= 60; i++ {
		u := outIDUpdate(i, fmt.Sprintf("s%d", i))
		if i%10 == 0 {
			// A plain asynq producer, which does not route: the queue
			// itself is served too.
			task, err := tasks.NewTask(u, asynq.Queue(e.queue))
			if err != nil {
				t.Fatal(err)
			}
			info, err := asynq.NewClientFromRedisClient(e.rdb).Enqueue(task)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.queue+"/"+info.ID)
			continue
		}
		r, err := e.prod.Enqueue(e.ctx, u) // routes to the binding's shard
		if err != nil {
			t.Fatal(err)
		}
		if r.Queue != l.QueueFor(u.SubsId) {
			t.Fatalf("producer queued %s to %s, want %s", u.SubsId, r.Queue, l.QueueFor(u.SubsId))
		}
		ids = append(ids, r.Queue+"/"+r.TaskID)
	}
	for _, id := range ids {
		q, tid, _ := strings.Cut(id, "/")
		eventually(t, 20*time.Second, "job "+id+" completed", func() bool {
			info, err := e.insp.GetTaskInfo(q, tid)
			return err == nil && info.State == asynq.TaskStateCompleted
		})
	}
	for i := 1; i <= 60; i++ {
		if b, ok := e.sim.Binding(dyplsim.SeedBinding(i).SubsId); !ok || b.OutId != fmt.Sprintf("s%d", i) {
			t.Errorf("binding %d: OutId %q", i, b.OutId)
		}
	}
}

// TestWorkerChangesTheShardCountOnlyWhenNoJobIsLeftBehind: a worker asking
// for another count is refused while a shard it would stop serving holds a
// job, and changes it once the shard is empty; a worker started meanwhile
// serves a shard of the earlier split while it holds jobs.
func TestWorkerChangesTheShardCountOnlyWhenNoJobIsLeftBehind(t *testing.T) {
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.Shards = map[string]int{c.KeyPrefix + "-live": 3} })
	if _, err := tasks.SetShards(e.ctx, e.rdb, e.ns, e.queue, 0, 3); err != nil {
		t.Fatal(err)
	}
	old := tasks.Layout{Queue: e.queue, Shards: 3}
	// A shard of the 3-way split that the 2-way split does not have (a
	// shard can keep its name across splits, when its slot fits both).
	stuck := notIn(old.Names()[1:], tasks.Layout{Queue: e.queue, Shards: 2}.Names())
	if _, err := e.prod.Enqueue(e.ctx, outIDUpdate(1, "left"), asynq.Queue(stuck), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}

	cfg := e.cfg
	cfg.Shards = map[string]int{e.queue: 2}
	cfg.Logger = zerolog.New(e.logs) // the start's own lines, should it fail
	w0, err := worker.New(cfg, e.rdb, e.api)
	if err == nil || !strings.Contains(err.Error(), "split 3 ways and 1 jobs still wait in "+stuck) {
		served := map[string]int(nil)
		if w0 != nil {
			served = w0.Queues()
		}
		t.Fatalf("change with a job left behind: %v (served %v; logs:\n%s)", err, served, e.logs)
	}
	if l, _ := tasks.ReadLayout(e.ctx, e.rdb, e.ns, e.queue); l.Shards != 3 {
		t.Fatalf("count changed to %d anyway", l.Shards)
	}

	// The count changes behind the job's back (another worker, once the
	// shard looked empty): a worker started now still serves the shard.
	if _, err := tasks.SetShards(e.ctx, e.rdb, e.ns, e.queue, 3, 2); err != nil {
		t.Fatal(err)
	}
	e.cfg.Shards = nil
	w := e.start()
	served := slices.Sorted(maps.Keys(w.Queues()))
	if !slices.Contains(served, stuck) || !slices.Contains(served, tasks.ShardName(e.queue, 1, 2)) {
		t.Fatalf("served %v: want the 2-way shards and %s", served, stuck)
	}
	infos, err := e.insp.ListScheduledTasks(stuck)
	if err != nil || len(infos) != 1 {
		t.Fatalf("scheduled in %s: %v %v", stuck, infos, err)
	}
	if err := e.insp.RunTask(stuck, infos[0].ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the job left in "+stuck+" completed", func() bool {
		info, err := e.insp.GetTaskInfo(stuck, infos[0].ID)
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	w.Shutdown()

	// Empty now: back to 3 ways is allowed, and to 1 (not split). The
	// queue is paused: so are its new shards.
	if err := e.insp.PauseQueue(e.queue); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 1} {
		cfg.Shards = map[string]int{e.queue: n}
		w, err := worker.New(cfg, e.rdb, e.api)
		if err != nil {
			t.Fatalf("change to %d with nothing left behind: %v", n, err)
		}
		if l, _ := tasks.ReadLayout(e.ctx, e.rdb, e.ns, e.queue); max(l.Shards, 1) != n {
			t.Fatalf("count %d, want %d", l.Shards, n)
		}
		if n == 1 && len(w.Queues()) != 1 {
			t.Fatalf("not split, served %v", w.Queues())
		}
		if n == 3 {
			st, _, err := (&admin.Control{Inspector: e.insp, Halts: &admin.Halts{Redis: e.rdb, Prefix: e.ns}}).
				Status(e.ctx, tasks.Layout{Queue: e.queue, Shards: 3}.Names()...)
			if err != nil || len(st) != 4 {
				t.Fatalf("status %v %v", st, err)
			}
			for _, q := range st {
				if !q.Paused {
					t.Errorf("%s not paused after the split of a paused queue", q.Queue)
				}
			}
		}
	}

	cfg.Shards = map[string]int{"elsewhere": 2}
	if _, err := worker.New(cfg, e.rdb, e.api); err == nil || !strings.Contains(err.Error(), "WORKER_QUEUES does not serve") {
		t.Fatalf("shards of a queue not served: %v", err)
	}
	cfg.Shards = nil
	cfg.Queues = map[string]int{e.queue: 1, e.queue + ".1": 1}
	if _, err := worker.New(cfg, e.rdb, e.api); err == nil || !strings.Contains(err.Error(), "is named as a shard of queue") {
		t.Fatalf("a queue named as a shard: %v", err)
	}
	cfg.Queues = map[string]int{"a{b}": 1}
	cfg.Shards = map[string]int{"a{b}": 2}
	if _, err := worker.New(cfg, e.rdb, e.api); err == nil || !strings.Contains(err.Error(), "cannot be split") {
		t.Fatalf("a queue with braces split: %v", err)
	}
}

// TestRunningWorkerFollowsTheSplit: a worker already running serves the
// shards of a split another worker made, and a shard of an earlier split
// that a producer still filled, within queueWatch, and lets go of the
// latter once it is empty.
func TestRunningWorkerFollowsTheSplit(t *testing.T) {
	e := newEnv(t, dyplsim.Config{}, nil)
	w := e.start()
	if got := w.Queues(); len(got) != 1 {
		t.Fatalf("served %v", got)
	}
	if _, err := tasks.SetShards(e.ctx, e.rdb, e.ns, e.queue, 0, 3); err != nil {
		t.Fatal(err)
	}
	l := tasks.Layout{Queue: e.queue, Shards: 3}
	eventually(t, 15*time.Second, "the worker serves the 3 shards", func() bool { return len(w.Queues()) == 4 })
	// A producer that still read an earlier split.
	var earlier []string
	for n := 2; n <= 8; n++ {
		earlier = append(earlier, tasks.Layout{Queue: e.queue, Shards: n}.Names()[1:]...)
	}
	stale := notIn(earlier, l.Names())
	var ids []string
	for i := 1; i <= 6; i++ {
		u := outIDUpdate(i, fmt.Sprintf("f%d", i))
		q := l.QueueFor(u.SubsId)
		if i == 6 {
			q = stale
		}
		r, err := e.prod.Enqueue(e.ctx, u, asynq.Queue(q))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, q+"/"+r.TaskID)
	}
	for _, id := range ids {
		q, tid, _ := strings.Cut(id, "/")
		eventually(t, 20*time.Second, "job "+id+" completed", func() bool {
			info, err := e.insp.GetTaskInfo(q, tid)
			return err == nil && info.State == asynq.TaskStateCompleted
		})
	}
	eventually(t, 15*time.Second, "the worker lets go of the emptied shard", func() bool {
		_, ok := w.Queues()[stale]
		return !ok && len(w.Queues()) == 4
	})
}

// TestWorkerStartsWhileRedisIsDownAndSplitsLater: a worker whose Redis
// does not answer at start serves its queues unsplit, and applies its
// WORKER_SHARDS once Redis answers.
func TestWorkerStartsWhileRedisIsDownAndSplitsLater(t *testing.T) {
	p := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	e := newEnvOn(t, rdb, dyplsim.Config{}, func(c *worker.Config) { c.Shards = map[string]int{c.KeyPrefix + "-live": 3} })
	p.Stop()
	w := e.start()
	if got := w.Queues(); len(got) != 1 {
		t.Fatalf("served %v while Redis was down, want the queue alone", got)
	}
	p.Start()
	eventually(t, 20*time.Second, "the split applied", func() bool { return len(w.Queues()) == 4 })
	if l, err := tasks.ReadLayout(e.ctx, rdb, e.ns, e.queue); err != nil || l.Shards != 3 {
		t.Fatalf("layout %+v %v", l, err)
	}
}

// notIn returns the first of names that is not in others.
func notIn(names, others []string) string {
	for _, n := range names {
		if !slices.Contains(others, n) {
			return n
		}
	}
	panic("every name is in others")
}
