package enqueuecli

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestBatchOnASplitQueue: on a queue split into shards (WORKER_SHARDS),
// each row goes to its SubsId's shard; queue pause and resume act on every
// shard; batch cancel finds and removes the rows in every shard; and a
// worker splitting the queue runs a batch to the end.
func TestBatchOnASplitQueue(t *testing.T) {
	h := newHarness(t)
	if _, err := tasks.SetShards(t.Context(), h.rdb, h.ns, h.queue, 0, 3); err != nil {
		t.Fatal(err)
	}
	l := tasks.Layout{Queue: h.queue, Shards: 3}

	r := h.run(h.write("a.csv", csvRows(300)))
	if r.code != 0 || counts(t, r) != [5]int{300, 300, 300, 0, 0} {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "split into 3 shards by SubsId")
	id := batchID(t, r)
	per := map[string]int{}
	for _, q := range l.Names() {
		infos, err := h.insp.ListPendingTasks(q, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
		for _, in := range infos {
			u, err := tasks.Decode(in.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if want := l.QueueFor(u.SubsId); q != want {
				t.Errorf("line %d (SubsId %s) is in %s, want %s", u.Meta.Line, u.SubsId, q, want)
			}
			per[q]++
		}
	}
	if per[h.queue] != 0 || len(per) != 3 {
		t.Fatalf("rows per queue %v: want every row in one of the 3 shards", per)
	}
	for q, n := range per {
		if n < 60 {
			t.Errorf("shard %s got %d of 300 rows", q, n)
		}
	}

	r = h.run("queue", "pause", h.queue)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	for _, q := range l.Names()[1:] {
		if info, err := h.insp.GetQueueInfo(q); err != nil || !info.Paused {
			t.Errorf("shard %s not paused: %v", q, err)
		}
	}
	if r = h.run("queue", "resume", h.queue); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if info, err := h.insp.GetQueueInfo(l.Names()[1]); err != nil || info.Paused {
		t.Errorf("shard not resumed: %v", err)
	}

	r = h.run("batch", "cancel", id)
	if r.code != 0 {
		t.Fatalf("cancel: %s", r)
	}
	mustContain(t, r, "stdout", "removed 300 of its jobs")
	for _, q := range l.Names() {
		if info, err := h.insp.GetQueueInfo(q); err == nil && info.Pending != 0 {
			t.Errorf("%s still holds %d jobs after the cancel", q, info.Pending)
		}
	}

	_, api := startSim(t, 40)
	w := startWorkerWith(t, h, api, func(c *worker.Config) { c.Shards = map[string]int{h.queue: 3} }, h.queue)
	if got := w.Queues(); !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(l.Names()))) {
		t.Fatalf("worker serves %v", got)
	}
	r = h.run("--wait", "--wait-timeout", "60s", h.write("b.csv", csvRows(40)))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stdout", "applied  OK    40")
}
