//go:build chaos

package deadletter

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/internal/redistest"
)

// TestChaosDeadLettersOnCluster works the dead letters on a three-master
// Redis Cluster: every write of a record and its index entry is one
// transaction or script in the {dlq} slot, records of the earlier layout
// (two slots) are moved, and the sweep, requeue and purge run without a
// cross-slot error.
func TestChaosDeadLettersOnCluster(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.Cluster(t, 3)})
	t.Cleanup(func() { rdb.Close() })
	ns := redistest.Namespace(t)
	s := &Store{Redis: rdb, Prefix: ns}
	c, in := asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb)
	q := ns + "-q"

	for _, id := range []string{"a", "b"} {
		if err := s.Put(ctx, rec(id, "isv.BIND_CONFLICT", t0)); err != nil {
			t.Fatal(err)
		}
	}
	old := rec("old", "isv.NO_NOT_EXIST", t0)
	b, _ := old.MarshalJSON()
	rdb.Set(ctx, ns+":dlq:rec:old", b, 0)
	rdb.ZAdd(ctx, ns+":dlq:index", redis.Z{Score: float64(t0.UnixMilli()), Member: "old"})

	bs := &batch.Store{Redis: rdb, Prefix: ns}
	h := batch.NewHasher("csv")
	h.Write([]byte(ns))
	bid := h.ID()
	if _, _, err := bs.Begin(ctx, batch.Info{ID: bid, File: "f", Format: "csv", Queue: q, Lines: 2, Rows: 1, ValidRows: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Record(ctx, bid, []batch.Entry{{Line: 2, Outcome: batch.OutcomePending}}); err != nil {
		t.Fatal(err)
	}
	tid := batch.TaskID(bid, 2)
	if _, err := c.Enqueue(asynq.NewTask(testType, []byte(rowPayload(bid, 2, 1))), asynq.Queue(q), asynq.TaskID(tid)); err != nil {
		t.Fatal(err)
	}
	if err := in.ArchiveTask(q, tid); err != nil {
		t.Fatal(err)
	}
	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}, Batches: bs}
	if n, err := sw.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep wrote %d, %v", n, err)
	}
	if rows, err := bs.Rows(ctx, bid, 2, 2); err != nil || rows[0].Outcome != batch.OutcomeDead || rows[0].Code != CodeArchived {
		t.Fatalf("row %+v %v", rows, err)
	}
	if n, _ := s.Count(ctx); n != 4 {
		t.Fatalf("%d records, want 4", n)
	}
	rq := &Requeuer{Store: s, Inspector: in, Client: c}
	if got, err := rq.Requeue(ctx, Filter{TaskIDs: []string{tid}}, false); err != nil || len(got) != 1 || got[0].Code != OutcomeRequeued {
		t.Fatalf("requeue %v %v", got, err)
	}
	if got, err := rq.Purge(ctx, Filter{Codes: []string{"isv.*"}}, false); err != nil || len(got) != 3 {
		t.Fatalf("purge %v %v", got, err)
	}
	if n, _ := s.Count(ctx); n != 0 {
		t.Fatalf("%d records left", n)
	}
	_ = in.DeleteQueue(q, true)
}
