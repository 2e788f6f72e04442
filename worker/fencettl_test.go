package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestFenceLifetime: a binding's fence does not stay in Redis forever: an
// applied update leaves it with tasks.FenceLifetime to live, long enough
// for every job that may still run (tasks.VersionWindow + JOB_MAX_AGE).
func TestFenceLifetime(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	u := outIDUpdate(3, "ttl")
	e.waitState(e.enqueue(u), 10*time.Second, asynq.TaskStateCompleted)
	ttl, err := e.rdb.PTTL(context.Background(), e.ns+":{"+u.SubsId+"}:fence").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < tasks.FenceLifetime-time.Minute || ttl > tasks.FenceLifetime {
		t.Errorf("fence TTL %v, want about %v", ttl, tasks.FenceLifetime)
	}
	if tasks.FenceLifetime <= tasks.VersionWindow+tasks.MaxJobAge {
		t.Errorf("fence lifetime %v does not cover the version window %v and the max job age %v", tasks.FenceLifetime, tasks.VersionWindow, tasks.MaxJobAge)
	}
}

// TestMaxAgeBound: JOB_MAX_AGE above tasks.MaxJobAge is refused.
func TestMaxAgeBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAge = tasks.MaxJobAge + time.Hour })
	_, err := worker.New(e.cfg, e.rdb, e.api)
	if err == nil || !strings.Contains(err.Error(), "JOB_MAX_AGE") {
		t.Fatalf("New with a max age of %v: %v", e.cfg.MaxAge, err)
	}
}
