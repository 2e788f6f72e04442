//go:build chaos

package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/redisconn"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestChaosClusterRedisCPUPerNode drains 5,000 jobs on as many bindings
// through two workers on a three-master Redis Cluster, first from one
// queue, then from a queue split three ways (WORKER_SHARDS), and reports
// each node's Redis CPU per job. dyplsq's own keys (job state, fence, lock)
// are hash-tagged by SubsId and spread over the nodes; asynq's keys of a
// queue share one slot, so with one queue the node holding it carries the
// queue's part of every job, and with the queue split each node carries a
// shard. BENCHMARKS.md ("Capacity") builds on these figures.
func TestChaosClusterRedisCPUPerNode(t *testing.T) {
	addrs := redistest.Cluster(t, 3)
	rdb, err := redisconn.Open(redisconn.Config{ClusterAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	cc := rdb.(*redis.ClusterClient)
	nodeOf := func(queue string) string {
		n, err := cc.MasterForKey(context.Background(), "asynq:{"+queue+"}:pending")
		if err != nil {
			t.Fatal(err)
		}
		return n.Options().Addr
	}

	one := drainOnCluster(t, rdb, addrs, 1)
	qNode := nodeOf(one.queue)
	for _, a := range addrs {
		role := "fence keys only"
		if a == qNode {
			role = "the queue's slot and its share of fence keys"
		}
		t.Logf("  one queue, node %s: %.0f µs per job (%s)", a, one.perJob[a], role)
	}
	// The fence's keys spread: every node works for the jobs, and the
	// queue's node carries the most.
	for _, a := range addrs {
		if one.perJob[a] <= 0 {
			t.Errorf("node %s used no CPU for the jobs: the keys did not spread", a)
		}
		if a != qNode && one.perJob[a] >= one.perJob[qNode] {
			t.Errorf("node %s (%.0f µs/job) worked as much as the queue's node %s (%.0f µs/job)", a, one.perJob[a], qNode, one.perJob[qNode])
		}
	}

	split := drainOnCluster(t, rdb, addrs, 3)
	var shardNodes []string
	for _, s := range (tasks.Layout{Queue: split.queue, Shards: 3}).Names()[1:] {
		shardNodes = append(shardNodes, nodeOf(s))
		t.Logf("  shard %s (slot %d) on node %s", s, tasks.Slot(s), nodeOf(s))
	}
	slices.Sort(shardNodes)
	if len(slices.Compact(shardNodes)) != 3 {
		t.Errorf("the three shards are on nodes %v, not one each", shardNodes)
	}
	for _, a := range addrs {
		t.Logf("  split 3 ways, node %s: %.0f µs per job", a, split.perJob[a])
	}
	// Split, no node carries the queue alone: the busiest node's share of
	// the cluster's Redis CPU drops below that of the one queue's node.
	oneShare, splitShare := one.perJob[qNode]/one.total, slices.Max(values(split.perJob))/split.total
	t.Logf("busiest node's share of the Redis CPU per job: one queue %.0f %%, split 3 ways %.0f %%", 100*oneShare, 100*splitShare)
	if splitShare >= oneShare {
		t.Errorf("split 3 ways, the busiest node took %.0f %% of the Redis CPU; with one queue, %.0f %%", 100*splitShare, 100*oneShare)
	}
}

// drained is what one drain on the cluster measured.
type drained struct {
	queue  string
	perJob map[string]float64 // node → µs of Redis CPU per job
	total  float64            // µs per job, all nodes
}

// drainOnCluster queues 5,000 jobs through a tasks.Producer to a queue of
// its own split shards ways (1: not split), drains them with two workers,
// and measures each node's Redis CPU over the drain.
func drainOnCluster(t *testing.T, rdb redis.UniversalClient, addrs []string, shards int) drained {
	const jobs = 5000
	e := newEnvOn(t, rdb, dyplsim.Config{Seed: jobs}, func(c *worker.Config) {
		c.Concurrency = 50
		c.QPS = 1e6
		c.TaskCheckInterval = 10 * time.Millisecond
		if shards > 1 {
			c.Shards = map[string]int{c.KeyPrefix + "-live": shards}
		}
	})
	t.Cleanup(e.cleanupRedis)
	if shards > 1 {
		// The first worker splits the queue; the producer then routes.
		if _, err := tasks.SetShards(e.ctx, rdb, e.ns, e.queue, 0, shards); err != nil {
			t.Fatal(err)
		}
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Value
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= jobs; i = int(next.Add(1)) {
				if _, err := e.prod.Enqueue(e.ctx, outIDUpdate(i, fmt.Sprintf("c%d", i))); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	queues := (tasks.Layout{Queue: e.queue, Shards: shards}).Names()
	before := nodeCPU(t, addrs)
	start := time.Now()
	e.start()
	e.cfg.WorkerID = e.ns + "-w2"
	e.start()
	for {
		done, left := 0, 0
		for _, q := range queues {
			info, err := e.insp.GetQueueInfo(q)
			if err != nil {
				continue
			}
			if info.Archived > 0 {
				t.Fatalf("%d jobs dead in %s", info.Archived, q)
			}
			done += info.Completed
			n, _ := admin.JobsToRun(e.insp, q)
			left += n
		}
		if done == jobs && left == 0 {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("split %d ways: %d of %d jobs done after 2 min", shards, done, jobs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	after := nodeCPU(t, addrs)
	d := drained{queue: e.queue, perJob: map[string]float64{}}
	for _, a := range addrs {
		d.perJob[a] = float64((after[a] - before[a]).Microseconds()) / jobs
		d.total += d.perJob[a]
	}
	t.Logf("split %d way(s): %d jobs in %s (%.0f/s), two workers; Redis CPU per job: %.0f µs in all", shards, jobs,
		elapsed.Round(time.Millisecond), jobs/elapsed.Seconds(), d.total)
	for i := 1; i <= jobs; i += jobs / 10 {
		if b, ok := e.sim.Binding(dyplsim.SeedBinding(i).SubsId); !ok || b.OutId != fmt.Sprintf("c%d", i) {
			t.Errorf("split %d ways: binding %d has OutId %q", shards, i, b.OutId)
		}
	}
	return d
}

// nodeCPU returns each node's Redis CPU time so far.
func nodeCPU(t *testing.T, addrs []string) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, err := c.InfoMap(context.Background(), "cpu").Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
			v, _ := strconv.ParseFloat(info["CPU"][k], 64)
			m[a] += time.Duration(v * float64(time.Second))
		}
	}
	return m
}

func values(m map[string]float64) []float64 {
	out := make([]float64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
