package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

// failNth fails the n-th command (counting each command of a pipeline or
// transaction) the client sends after it is armed; a pipeline holding it
// fails whole.
type failNth struct {
	n, seen atomic.Int64
}

var errInjected = errors.New("injected: connection reset")

func (h *failNth) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failNth) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.seen.Add(1) == h.n.Load() {
			cmd.SetErr(errInjected)
			return errInjected
		}
		return next(ctx, cmd)
	}
}
func (h *failNth) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		fail := false
		for range cmds {
			if h.seen.Add(1) == h.n.Load() {
				fail = true
			}
		}
		if fail {
			for _, c := range cmds {
				c.SetErr(errInjected)
			}
			return errInjected
		}
		return next(ctx, cmds)
	}
}

// indexedIff fails unless taskID's record exists exactly when the index
// lists it.
func indexedIff(t *testing.T, s *Store, rdb *redis.Client, taskID, when string) bool {
	t.Helper()
	_, ok, err := s.Get(context.Background(), taskID)
	if err != nil {
		t.Fatal(err)
	}
	_, zerr := rdb.ZScore(context.Background(), s.IndexKey(), taskID).Result()
	indexed := zerr == nil
	if ok != indexed {
		t.Errorf("%s: record exists %v, indexed %v", when, ok, indexed)
	}
	return ok
}

// A record and its index entry are written together: whichever single
// command fails, there is never one without the other.
func TestRecordAndIndexWrittenTogether(t *testing.T) {
	ctx := context.Background()
	s, rdb, ns := newStore(t)
	for k := int64(1); ; k++ {
		hook := &failNth{}
		hook.n.Store(k)
		fc := redistest.Client(t)
		fc.AddHook(hook)
		fs := &Store{Redis: fc, Prefix: ns}
		id := fmt.Sprintf("put%d", k)
		err := fs.Put(ctx, rec(id, "isv.BIND_CONFLICT", t0))
		indexedIff(t, s, rdb, id, fmt.Sprintf("Put with command %d failing (err %v)", k, err))
		id = fmt.Sprintf("nx%d", k)
		hook.seen.Store(0)
		_, err2 := fs.putAdopted(ctx, rec(id, CodeArchived, t0), "q")
		if indexedIff(t, s, rdb, id, fmt.Sprintf("putAdopted with command %d failing (err %v)", k, err2)) {
			if m, _ := s.adoptions(ctx); m[id] == "" {
				t.Errorf("putAdopted with command %d failing (err %v): the record is not listed among the adoptions", k, err2)
			}
		}
		if err == nil && err2 == nil || k > 20 {
			break
		}
	}
}

// The sweep indexes a record it finds without its index entry.
func TestSweepRepairsIndex(t *testing.T) {
	ctx := context.Background()
	s, rdb, _ := newStore(t)
	c, in, q := newQueue(t, s)
	enqueue(t, c, q, "orphan", payload)
	if err := in.ArchiveTask(q, "orphan"); err != nil {
		t.Fatal(err)
	}
	r := rec("orphan", "isv.BIND_CONFLICT", t0)
	r.Queue = q
	b, _ := r.MarshalJSON()
	if err := rdb.Set(ctx, s.RecordKey("orphan"), b, 0).Err(); err != nil {
		t.Fatal(err)
	}
	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}}
	if _, err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, Filter{})
	if err != nil || len(got) != 1 || got[0].Code != "isv.BIND_CONFLICT" {
		t.Fatalf("list after the sweep: %+v %v", got, err)
	}
}

// Records written by the earlier layout (record and index in two slots)
// are moved into the current one, and none is lost: indexed ones by any
// use of the store, unindexed ones of archived tasks by the sweep.
func TestOldLayoutMigrated(t *testing.T) {
	ctx := context.Background()
	s, rdb, ns := newStore(t)
	c, in, q := newQueue(t, s)
	oldRec := func(id string) string { return ns + ":dlq:rec:" + id }
	oldIndex := ns + ":dlq:index"
	write := func(id string, indexed bool) {
		r := rec(id, "isv.NO_NOT_EXIST", t0)
		r.Queue = q
		b, _ := r.MarshalJSON()
		rdb.Set(ctx, oldRec(id), b, 0)
		if indexed {
			rdb.ZAdd(ctx, oldIndex, redis.Z{Score: float64(t0.UnixMilli()), Member: id})
		}
	}
	write("a", true)
	write("b", true)
	write("c", false) // the index write failed; the task is still archived
	enqueue(t, c, q, "c", payload)
	if err := in.ArchiveTask(q, "c"); err != nil {
		t.Fatal(err)
	}
	// "b" also has a record in the current layout: the current one wins.
	if err := s.Put(ctx, rec("b", "isv.BIND_CONFLICT", t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}

	got, err := s.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, r := range got {
		codes[r.TaskID] = r.Code
	}
	if codes["a"] != "isv.NO_NOT_EXIST" || codes["b"] != "isv.BIND_CONFLICT" {
		t.Errorf("list after upgrade: %v", codes)
	}
	sw := &Sweeper{Store: s, Inspector: in, Queues: []string{q}}
	if _, err := sw.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	r, ok, err := s.Get(ctx, "c")
	if err != nil || !ok || r.Code != "isv.NO_NOT_EXIST" {
		t.Errorf("unindexed old record: %+v %v %v", r, ok, err)
	}
	if n, _ := s.Count(ctx); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
	if n, _ := rdb.Exists(ctx, oldRec("a"), oldRec("b"), oldRec("c"), oldIndex).Result(); n != 0 {
		t.Errorf("%d keys of the old layout left", n)
	}
}
