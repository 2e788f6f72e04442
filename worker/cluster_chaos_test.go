//go:build chaos

package worker_test

import (
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/redisconn"
	"github.com/dyplsq/dyplsq/worker"
)

// TestChaosRedisCluster runs enqueue, processing, the fence and the shared
// rate limit on a three-master Redis Cluster started for the test.
func TestChaosRedisCluster(t *testing.T) {
	addrs := redistest.Cluster(t, 3)
	rdb, err := redisconn.Open(redisconn.Config{ClusterAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the workers stop: asynq's subscriber panics on a
	// closed client.
	t.Cleanup(func() { rdb.Close() })
	e := newEnvOn(t, rdb, dyplsim.Config{QPS: 200, Burst: 5, ThrottleCode: "isv.FLOW_LIMIT"},
		func(c *worker.Config) { c.MaxAttempts = 25; c.QPS = 400 })
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Kind: "code", Code: "isp.SYSTEM_ERROR", Rate: 0.1})
	e.start()
	e.cfg.WorkerID = e.ns + "-w2"
	e.start()
	jobs := enqueueRounds(e, 10, 6, "c", "1391111")
	bad, outcomes := violations(t, e, jobs, 90*time.Second)
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("cluster %v: %d jobs %v; simulator %v", addrs, len(jobs), outcomes, e.sim.Stats().Calls["UpdateSubscription"])
	if outcomes["dead"] > 0 {
		t.Errorf("%d dead", outcomes["dead"])
	}
	// The fence and limiter keys exist on the cluster.
	if n, err := rdb.Exists(e.ctx, e.ns+":limit:UpdateSubscription").Result(); err != nil {
		t.Fatal(err)
	} else if n != 1 && e.sim.Stats().Calls["UpdateSubscription"]["isv.FLOW_LIMIT"] > 0 {
		t.Errorf("throttled, but the shared rate was never lowered")
	}
	if n, err := rdb.Exists(e.ctx, e.ns+":{"+seed(1, "").SubsId+"}:fence").Result(); err != nil || n != 1 {
		t.Errorf("fence record missing: %v %v", n, err)
	}
}
