package enqueuecli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

// TestDurableEnqueue queues a file with --durable against a primary and
// one replica: asking for that replica confirms every row (and the replica
// holds them); asking for two names every row as unconfirmed and exits 1,
// with the rows still queued.
func TestDurableEnqueue(t *testing.T) {
	t.Parallel()
	p := redistest.Server(t)
	host, port, _ := strings.Cut(p.Addr, ":")
	r := redistest.Server(t, "--replicaof", host, port)
	replica := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer replica.Close()
	ctx := context.Background()
	for !strings.Contains(replica.Info(ctx, "replication").Val(), "master_link_status:up") {
		time.Sleep(50 * time.Millisecond)
	}
	h := newHarnessOn(t, p.URL())

	res := h.run("--durable", "1", h.write("a.csv", csvRows(300)))
	if res.code != exitOK || strings.Contains(res.stderr, "not confirmed") {
		t.Fatalf("--durable 1 with one replica:\n%s", res)
	}
	if n := replica.LLen(ctx, "asynq:{"+h.queue+"}:pending").Val(); n != 300 {
		t.Errorf("replica holds %d pending rows right after a durable enqueue, want 300", n)
	}

	start := time.Now()
	res = h.run("--durable", "2", "--durable-timeout", "200ms", h.write("b.csv", csvRows(300)+"\n"))
	if res.code != exitFailed {
		t.Fatalf("--durable 2 with one replica: exit %d, want %d\n%s", res.code, exitFailed, res)
	}
	mustContain(t, res, "stderr", "300 rows of batch", "not confirmed by 2 Redis replicas within 200ms")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("unconfirmed run took %s", d)
	}
	if n := h.pending(); n != 600 {
		t.Errorf("%d rows pending, want 600: unconfirmed rows stay queued", n)
	}
}
