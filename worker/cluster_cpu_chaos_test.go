//go:build chaos

package worker_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/redisconn"
	"github.com/dyplsq/dyplsq/worker"
)

// TestChaosClusterRedisCPUPerNode drains 5,000 jobs on as many bindings
// through two workers on a three-master Redis Cluster and reports each
// node's Redis CPU per job. dyplsq's own keys (job state, fence, lock) are
// hash-tagged by SubsId and spread over the nodes; asynq's keys of a queue
// share one slot, so the node holding it carries the queue's part of every
// job. BENCHMARKS.md ("Capacity") builds on these figures.
func TestChaosClusterRedisCPUPerNode(t *testing.T) {
	const jobs = 5000
	addrs := redistest.Cluster(t, 3)
	rdb, err := redisconn.Open(redisconn.Config{ClusterAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	e := newEnvOn(t, rdb, dyplsim.Config{Seed: jobs}, func(c *worker.Config) {
		c.Concurrency = 50
		c.QPS = 1e6
		c.TaskCheckInterval = 10 * time.Millisecond
	})
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
				u := seed(i, "updateOutId")
				u.OutId = fmt.Sprintf("c%d", i)
				if _, err := e.prod.Enqueue(e.ctx, u); err != nil {
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
	nodeCPU := func() map[string]time.Duration {
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
	before := nodeCPU()
	start := time.Now()
	e.start()
	e.cfg.WorkerID = e.ns + "-w2"
	e.start()
	for {
		q, err := e.insp.GetQueueInfo(e.queue)
		if err == nil && q.Completed+q.Archived == jobs {
			if q.Archived > 0 {
				t.Fatalf("%d jobs dead", q.Archived)
			}
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("jobs not done after 2 min: %+v", q)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	after := nodeCPU()
	queueNode, err := rdb.(*redis.ClusterClient).MasterForKey(e.ctx, "asynq:{"+e.queue+"}:pending")
	if err != nil {
		t.Fatal(err)
	}
	qAddr := queueNode.Options().Addr
	var total time.Duration
	perJob := map[string]float64{}
	for _, a := range addrs {
		d := after[a] - before[a]
		total += d
		perJob[a] = float64(d.Microseconds()) / jobs
	}
	t.Logf("%d jobs in %s (%.0f/s), two workers; Redis CPU per job: %.0f µs in all", jobs, elapsed.Round(time.Millisecond),
		jobs/elapsed.Seconds(), float64(total.Microseconds())/jobs)
	for _, a := range addrs {
		role := "fence keys only"
		if a == qAddr {
			role = "the queue's slot and its share of fence keys"
		}
		t.Logf("  node %s: %.0f µs per job (%s)", a, perJob[a], role)
	}
	// The fence's keys spread: every node works for the jobs, and the
	// queue's node carries the most.
	for _, a := range addrs {
		if perJob[a] <= 0 {
			t.Errorf("node %s used no CPU for %d jobs: the keys did not spread", a, jobs)
		}
		if a != qAddr && perJob[a] >= perJob[qAddr] {
			t.Errorf("node %s (%.0f µs/job) worked as much as the queue's node %s (%.0f µs/job)", a, perJob[a], qAddr, perJob[qAddr])
		}
	}
}
