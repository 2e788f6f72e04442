package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/tasks"
)

// TestUpdatesToASplitQueue: to a queue split into shards, each item goes to
// its binding's shard, and GET /v1/updates finds it there until it ends.
func TestUpdatesToASplitQueue(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := tasks.SetShards(context.Background(), e.rdb, e.ns, e.bulk, 0, 3); err != nil {
		t.Fatal(err)
	}
	l := tasks.Layout{Queue: e.bulk, Shards: 3}
	var items []map[string]any
	for i := 1; i <= 12; i++ {
		items = append(items, item(i))
	}
	r := e.do("POST", "/v1/updates?queue=bulk", bearer(token), body(t, items), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	acc := decode[accepted](t, r)
	used := map[string]bool{}
	for i, it := range acc.Items {
		if want := l.QueueFor(items[i]["SubsId"].(string)); it.Queue != want {
			t.Fatalf("item %d in %s, want %s", i, it.Queue, want)
		}
		used[it.Queue] = true
	}
	if acc.Queue != e.bulk || len(used) < 2 {
		t.Fatalf("request queue %s, item queues %v", acc.Queue, used)
	}
	// Pending, in its shard: found.
	g := e.do("GET", "/v1/updates/"+acc.Items[0].TaskID, bearer(token), nil, nil)
	if g.status != http.StatusOK || decode[status](t, g).State != batch.OutcomePending {
		t.Fatalf("GET pending item: %d %s", g.status, g.body)
	}
	e.startWorker() // follows the split in Redis
	for i, it := range acc.Items {
		if st := e.waitEnded(it.TaskID); st.Outcome != batch.OutcomeApplied {
			t.Errorf("item %d: %+v", i, st)
		}
	}
}
