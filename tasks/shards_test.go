package tasks_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/tasks"
)

func TestSlotMatchesRedisCluster(t *testing.T) {
	// CLUSTER KEYSLOT answers, from Redis's documentation and a live
	// cluster: "foo" 12182, "123456789" 12739 (CRC16 0x31C3).
	for name, want := range map[string]int{"foo": 12182, "123456789": 12739, "bar": 5061, "": 0} {
		if got := tasks.Slot(name); got != want {
			t.Errorf("Slot(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestShardNamesSpreadOverTheSlots(t *testing.T) {
	for _, q := range []string{tasks.DefaultBulkQueue, tasks.DefaultLiveQueue, "x", "批量"} {
		for n := 2; n <= tasks.MaxShards; n++ {
			l := tasks.Layout{Queue: q, Shards: n}
			names := l.Names()
			if len(names) != n+1 || names[0] != q {
				t.Fatalf("%d shards of %s: names %v", n, q, names)
			}
			seen := map[string]bool{}
			for i, name := range names[1:] {
				if seen[name] {
					t.Fatalf("%d shards of %s: %s twice", n, q, name)
				}
				seen[name] = true
				lo, hi := i*16384/n, (i+1)*16384/n
				if s := tasks.Slot(name); s < lo || s >= hi {
					t.Errorf("shard %d of %d of %s is %s in slot %d, outside [%d, %d)", i, n, q, name, s, lo, hi)
				}
				if name != tasks.ShardName(q, i, n) {
					t.Fatalf("ShardName is not stable")
				}
			}
		}
	}
	// The names are part of what producers and workers agree on: pin the
	// default queue's three-way split.
	got := tasks.Layout{Queue: tasks.DefaultBulkQueue, Shards: 3}.Names()
	t.Logf("3 shards of %s: %v", tasks.DefaultBulkQueue, got)
	if want := pinnedBulk3; !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
}

// pinnedBulk3 are the names of the default bulk queue's three shards.
var pinnedBulk3 = []string{"dyplsq-bulk", "dyplsq-bulk.0", "dyplsq-bulk.1", "dyplsq-bulk.2-1"}

func TestQueueForKeepsABindingOnOneShard(t *testing.T) {
	l := tasks.Layout{Queue: "q", Shards: 4}
	count := map[string]int{}
	for i := range 4000 {
		id := fmt.Sprintf("%016d", 1000000+i)
		q := l.QueueFor(id)
		if q != l.QueueFor(id) {
			t.Fatal("QueueFor is not stable")
		}
		if !slices.Contains(l.Names()[1:], q) {
			t.Fatalf("QueueFor(%s) = %s, not a shard", id, q)
		}
		count[q]++
	}
	for q, c := range count {
		if c < 800 || c > 1200 {
			t.Errorf("%s got %d of 4000 bindings", q, c)
		}
	}
	if q := (tasks.Layout{Queue: "q"}).QueueFor("1"); q != "q" {
		t.Errorf("unsplit queue routes to %s", q)
	}
}

func TestSetShardsChangesOnlyFromTheCountItWasGiven(t *testing.T) {
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	ctx := context.Background()
	t.Cleanup(func() { rdb.Del(context.Background(), tasks.ShardsKey(ns)) })

	l, err := tasks.ReadLayout(ctx, rdb, ns, "q")
	if err != nil || l.Sharded() || l.Queue != "q" {
		t.Fatalf("fresh: %+v %v", l, err)
	}
	if got, err := tasks.SetShards(ctx, rdb, ns, "q", 0, 3); err != nil || got != 3 {
		t.Fatalf("0→3: %d %v", got, err)
	}
	// A writer that read an older count loses.
	if got, err := tasks.SetShards(ctx, rdb, ns, "q", 0, 5); err != nil || got != 3 {
		t.Fatalf("stale 0→5: %d %v", got, err)
	}
	if l, _ := tasks.ReadLayout(ctx, rdb, ns, "q"); l.Shards != 3 {
		t.Fatalf("read %+v", l)
	}
	all, err := tasks.ReadLayouts(ctx, rdb, ns)
	if err != nil || len(all) != 1 || all["q"].Shards != 3 {
		t.Fatalf("ReadLayouts %v %v", all, err)
	}
	if got, err := tasks.SetShards(ctx, rdb, ns, "q", 3, 1); err != nil || got != 0 {
		t.Fatalf("3→1: %d %v", got, err)
	}
	if l, _ := tasks.ReadLayout(ctx, rdb, ns, "q"); l.Sharded() {
		t.Fatalf("after unsplitting: %+v", l)
	}
	if _, err := tasks.SetShards(ctx, rdb, ns, "q", 0, tasks.MaxShards+1); err == nil {
		t.Fatal("more than MaxShards accepted")
	}
}

func TestProducerQueuesToTheBindingsShard(t *testing.T) {
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	ctx := context.Background()
	q := ns + "-live"
	l := tasks.Layout{Queue: q, Shards: 4}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() {
		rdb.Del(context.Background(), tasks.ShardsKey(ns), tasks.VersionKey(ns))
		for _, name := range l.Names() {
			_ = insp.DeleteQueue(name, true)
		}
	})
	if _, err := tasks.SetShards(ctx, rdb, ns, q, 0, 4); err != nil {
		t.Fatal(err)
	}
	p := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb, Queue: q, KeyPrefix: ns}
	for i := range 40 {
		u := tasks.Update{PoolKey: "FC1", SubsId: fmt.Sprintf("%016d", 5000+i), PhoneNoX: "17000000000", OperateType: "updateOutId", OutId: "x",
			IdempotencyKey: fmt.Sprintf("k%d", i)}
		r, err := p.Enqueue(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if want := l.QueueFor(u.SubsId); r.Queue != want {
			t.Fatalf("%s went to %s, want %s", u.SubsId, r.Queue, want)
		}
		if _, err := insp.GetTaskInfo(r.Queue, r.TaskID); err != nil {
			t.Fatal(err)
		}
		// The same key again is a duplicate: it is looked up in the shard.
		if r2, err := p.Enqueue(ctx, u); err != nil || !r2.Duplicate || r2.Queue != r.Queue {
			t.Fatalf("again: %+v %v", r2, err)
		}
	}
}

// Holders names the split in force, then the shards of earlier splits that
// asynq knows, and nothing merely named alike.
func TestHoldersNamesEveryQueueThatMayHoldJobs(t *testing.T) {
	l := tasks.Layout{Queue: "bulk", Shards: 3}
	now := l.Names()
	earlier := tasks.Layout{Queue: "bulk", Shards: 2}.Names()
	known := append([]string{"bulk", "bulky.1", "bulk.x", "bulk.1-", "other.1", now[0]}, earlier...)
	got := l.Holders(known)
	want := slices.Clone(now)
	for _, k := range earlier {
		if !slices.Contains(want, k) {
			want = append(want, k)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Holders = %v, want %v", got, want)
	}
	if got := (tasks.Layout{Queue: "bulk"}).Holders([]string{"bulk", "bulk.2"}); !slices.Equal(got, []string{"bulk", "bulk.2"}) {
		t.Errorf("unsplit Holders = %v, want [bulk bulk.2]", got)
	}
	if got := tasks.Shards([]string{"a.1", "b.1", "a.2-3", "a"}, "a"); !slices.Equal(got, []string{"a.1", "a.2-3"}) {
		t.Errorf("Shards = %v", got)
	}
}
