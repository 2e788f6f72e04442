//go:build chaos

package enqueuecli

import (
	"context"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/redisconn"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestChaosRedisCluster runs the CLI on a three-master Redis Cluster: every
// script of the batch record keeps to one slot, and queueing, re-running,
// following through a worker, reporting and cancelling all work.
func TestChaosRedisCluster(t *testing.T) {
	addrs := redistest.Cluster(t, 3)
	rdb, err := redisconn.Open(redisconn.Config{ClusterAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	ns := redistest.Namespace(t)
	h := &harness{t: t, rdb: rdb, ns: ns, queue: ns + "-bulk", dir: t.TempDir(), insp: asynq.NewInspectorFromRedisClient(rdb),
		store: &batch.Store{Redis: rdb, Prefix: ns}}
	env := func(k string) string {
		switch k {
		case "REDIS_CLUSTER_ADDRS":
			return strings.Join(addrs, ",")
		case "DYPLSQ_KEY_PREFIX":
			return ns
		}
		return ""
	}
	runC := func(args ...string) result {
		var out, errb safebuf.Buffer
		code := Run(context.Background(), h.withQueue(args), env, strings.NewReader(""), &out, &errb)
		return result{code, out.String(), errb.String()}
	}

	p := h.write("a.csv", csvRows(3000))
	r := runC(p)
	if r.code != 0 || counts(t, r) != [5]int{3000, 3000, 3000, 0, 0} {
		t.Fatalf("%s", r)
	}
	r = runC(p)
	if r.code != 0 || counts(t, r) != [5]int{3000, 3000, 0, 3000, 0} {
		t.Fatalf("re-run: %s", r)
	}
	ts := h.tasksIn()
	for i := 1; i < len(ts); i++ {
		if ts[i].u.Meta.Version <= ts[i-1].u.Meta.Version {
			t.Fatalf("versions out of line order at line %d", ts[i].u.Meta.Line)
		}
	}
	r = runC("batch", "cancel", batchID(t, r))
	if r.code != 0 || h.pending() != 0 {
		t.Fatalf("cancel: %s (pending %d)", r, h.pending())
	}

	_, api := startSim(t, 20)
	startWorker(t, h, api, h.queue)
	r = runC("--wait", "--wait-timeout", "60s", "--report", "-", h.write("b.csv", csvRows(20)))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	if !strings.Contains(r.stdout, "applied  OK    20") || strings.Count(r.stdout, ",applied,OK,") != 20 {
		t.Errorf("%s", r)
	}

	// A queue split three ways (WORKER_SHARDS): one shard on each master,
	// every row in its binding's shard, the batch runs to the end.
	split := ns + "-split"
	t.Cleanup(func() {
		for _, q := range (tasks.Layout{Queue: split, Shards: 3}).Names() {
			_ = h.insp.DeleteQueue(q, true)
		}
	})
	startWorkerWith(t, h, api, func(c *worker.Config) { c.Shards = map[string]int{split: 3} }, split)
	nodes := map[string]bool{}
	for _, q := range (tasks.Layout{Queue: split, Shards: 3}).Names()[1:] {
		n, err := rdb.(*redis.ClusterClient).MasterForKey(context.Background(), "asynq:{"+q+"}:pending")
		if err != nil {
			t.Fatal(err)
		}
		nodes[n.Options().Addr] = true
	}
	if len(nodes) != 3 {
		t.Errorf("the three shards are on %d masters", len(nodes))
	}
	r = runC("--queue", split, "--wait", "--wait-timeout", "60s", "--report", "-", h.write("c.csv", strings.ReplaceAll(csvRows(20), ",137", ",139")))
	if r.code != 0 || !strings.Contains(r.stderr, "split into 3 shards") {
		t.Fatalf("%s", r)
	}
	if !strings.Contains(r.stdout, "applied  OK    20") {
		t.Errorf("%s", r)
	}
}
