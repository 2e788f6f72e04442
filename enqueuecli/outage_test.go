package enqueuecli

import (
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

// TestRedisOutage: Redis goes away mid-run. Back within --redis-timeout,
// the run completes; away for longer, it exits 2 saying how to resume, and
// the same command then queues the rest. Every row is queued exactly once.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Server(t, "--appendonly", "yes", "--appendfsync", "always")
	h := newHarnessOn(t, srv.URL())
	const n = 5000
	p := h.write("big.csv", csvRows(n))

	waitQueued := func(min int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for h.pending() < min {
			if time.Now().After(deadline) {
				t.Fatalf("only %d queued", h.pending())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// Back within the timeout.
	done := make(chan result, 1)
	go func() { done <- h.run("--concurrency", "2", "--redis-timeout", "20s", p) }()
	waitQueued(400)
	srv.Stop()
	time.Sleep(1500 * time.Millisecond)
	srv.Start()
	r := <-done
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "is not answering", "retrying for up to 20s", "Redis answers again after")
	if c := counts(t, r); c[2]+c[3] != n {
		t.Errorf("summary %v", c)
	}
	ts := h.tasksIn()
	if len(ts) != n {
		t.Fatalf("%d tasks for %d rows", len(ts), n)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].u.Meta.Version <= ts[i-1].u.Meta.Version {
			t.Fatalf("versions out of line order at line %d", ts[i].u.Meta.Line)
		}
	}

	// Away for longer than the timeout: another file (a batch is named by
	// its rows), to another queue.
	h.queue = h.ns + "-other"
	p = h.write("big2.csv", csvRows(n)+"\n")
	go func() { done <- h.run("--concurrency", "2", "--redis-timeout", "1s", p) }()
	waitQueued(400)
	srv.Stop()
	r = <-done
	srv.Start()
	if r.code != exitUsage {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "Redis has not answered for 1s (--redis-timeout)", "Nothing is lost",
		"run the same command again once Redis is back:\n  enqueue --queue "+h.queue+" --concurrency 2 --redis-timeout 1s "+p)
	if strings.Count(r.stderr, "is not answering") != 1 {
		t.Errorf("the outage was reported more than once:\n%s", r.stderr)
	}
	r = h.run("--concurrency", "2", "--redis-timeout", "1s", p)
	if r.code != 0 {
		t.Fatalf("resume: %s", r)
	}
	if ts := h.tasksIn(); len(ts) != n {
		t.Fatalf("%d tasks for %d rows after resume", len(ts), n)
	}
}
