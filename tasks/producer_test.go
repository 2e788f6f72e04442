package tasks

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// newTestProducer returns a Producer on the shared Redis with its own queue
// and key prefix, both cleaned up when the test ends.
func newTestProducer(t *testing.T) (*Producer, *redis.Client, *asynq.Inspector) {
	t.Helper()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	p := NewProducer(rdb)
	p.Queue = ns + "-live"
	p.KeyPrefix = ns
	p.Now = func() time.Time { return testNow }
	cleanupQueue(t, rdb, p.Queue)
	cleanupKeys(t, rdb, VersionKey(ns))
	return p, rdb, asynq.NewInspectorFromRedisClient(rdb)
}

func TestVersionKey(t *testing.T) {
	if got := VersionKey(""); got != "dyplsq:version" {
		t.Errorf("VersionKey(\"\") = %q", got)
	}
	if got := VersionKey("t1"); got != "t1:version" {
		t.Errorf("VersionKey(\"t1\") = %q", got)
	}
}

func TestNextVersions(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Namespace(t)
	cleanupKeys(t, rdb, VersionKey(prefix))
	ctx := context.Background()

	first, err := NextVersions(ctx, rdb, prefix, 1)
	if err != nil || first != 1 {
		t.Fatalf("NextVersions(1) = %d, %v; want 1", first, err)
	}
	first, err = NextVersions(ctx, rdb, prefix, 100)
	if err != nil || first != 2 {
		t.Fatalf("NextVersions(100) = %d, %v; want 2", first, err)
	}
	first, err = NextVersions(ctx, rdb, prefix, 1)
	if err != nil || first != 102 {
		t.Fatalf("NextVersions(1) = %d, %v; want 102", first, err)
	}
	if _, err := NextVersions(ctx, rdb, prefix, 0); err == nil {
		t.Error("NextVersions(0) did not fail")
	}
}

func TestProducerEnqueue(t *testing.T) {
	p, _, insp := newTestProducer(t)
	ctx := context.Background()

	u := valid("updateNoA")
	u.SubsId = " 1000000768790001\u3000" // trimmed before it is queued
	res, err := p.Enqueue(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if res.Queue != p.Queue || res.Version != 1 || res.Duplicate || res.TaskID == "" {
		t.Fatalf("Enqueue = %+v", res)
	}
	info, err := insp.GetTaskInfo(p.Queue, res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != TypeUpdateSubscription || info.MaxRetry != DefaultMaxRetry || info.Retention != DefaultRetention {
		t.Errorf("task %+v", info)
	}
	got, err := Decode(info.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{Schema: 1, Version: 1, EnqueuedAt: testNow, Source: SourceAPI}
	if got.Meta == nil || *got.Meta != want {
		t.Errorf("Meta = %+v, want %+v", got.Meta, want)
	}
	if got.SubsId != "1000000768790001" {
		t.Errorf("SubsId = %q, want it trimmed", got.SubsId)
	}
}

func TestProducerVersionsFollowEnqueueOrder(t *testing.T) {
	p, _, insp := newTestProducer(t)
	ctx := context.Background()

	var versions []int64
	ids := map[string]int64{}
	for i := range 20 {
		u := valid("updateOutId")
		u.OutId = fmt.Sprint("out-", i)
		res, err := p.Enqueue(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, res.Version)
		ids[res.TaskID] = res.Version
	}
	for i := 1; i < len(versions); i++ {
		if versions[i] <= versions[i-1] {
			t.Fatalf("versions not strictly increasing: %v", versions)
		}
	}
	pending, err := insp.ListPendingTasks(p.Queue, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 20 {
		t.Fatalf("%d pending tasks, want 20", len(pending))
	}
	for _, info := range pending {
		u, err := Decode(info.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if u.Meta.Version != ids[info.ID] {
			t.Errorf("task %s carries version %d, Enqueue said %d", info.ID, u.Meta.Version, ids[info.ID])
		}
	}
}

func TestProducerConcurrentEnqueuesGetDistinctVersions(t *testing.T) {
	p, _, _ := newTestProducer(t)
	ctx := context.Background()
	const n = 50
	var (
		mu       sync.Mutex
		versions []int64
		wg       sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			res, err := p.Enqueue(ctx, valid("updateNoA"))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			versions = append(versions, res.Version)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(versions)
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("versions %v, want 1..%d once each", versions, n)
		}
	}
}

func TestProducerIdempotencyKey(t *testing.T) {
	p, _, insp := newTestProducer(t)
	ctx := context.Background()

	u := valid("updateNoA")
	u.IdempotencyKey = "order-42/new-a"
	first, err := p.Enqueue(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || first.TaskID != TaskIDForKey(u.IdempotencyKey) {
		t.Fatalf("first Enqueue = %+v", first)
	}
	second, err := p.Enqueue(ctx, u)
	if err != nil {
		t.Fatalf("second Enqueue: %v, want no error", err)
	}
	if want := (Result{TaskID: first.TaskID, Queue: p.Queue, Duplicate: true}); !reflect.DeepEqual(second, want) {
		t.Fatalf("second Enqueue = %+v, want %+v", second, want)
	}
	qi, err := insp.GetQueueInfo(p.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if qi.Size != 1 || qi.Pending != 1 {
		t.Errorf("queue holds %d tasks (%d pending), want 1", qi.Size, qi.Pending)
	}

	// An explicit TaskID option behaves the same.
	opt := asynq.TaskID("explicit")
	if _, err := p.Enqueue(ctx, valid("updateNoA"), opt); err != nil {
		t.Fatal(err)
	}
	res, err := p.Enqueue(ctx, valid("updateNoA"), opt)
	if err != nil || !res.Duplicate || res.TaskID != "explicit" {
		t.Errorf("Enqueue with a taken TaskID = %+v, %v", res, err)
	}
}

func TestProducerRejectsInvalidUpdate(t *testing.T) {
	p, rdb, insp := newTestProducer(t)
	u := valid("updateNoA")
	u.PhoneNoA = "138-0013-8000"
	u.SubsId = ""
	_, err := p.Enqueue(context.Background(), u)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("Enqueue: %v, want a ValidationError with 2 problems", err)
	}
	queues, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(queues, p.Queue) {
		t.Errorf("queue %s exists after an invalid update", p.Queue)
	}
	if err := rdb.Get(context.Background(), VersionKey(p.KeyPrefix)).Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("a version was taken for an invalid update: %v", err)
	}
}

func TestProducerKeepsReplayMeta(t *testing.T) {
	p, _, insp := newTestProducer(t)
	u := valid("updateNoA")
	u.Meta = &Meta{Schema: 0, Version: 77, Batch: "b1", Line: 3, Source: SourceRequeue, RequeuedFrom: "old",
		EnqueuedAt: time.Unix(0, 0)}
	res, err := p.Enqueue(context.Background(), u, asynq.Queue(p.Queue))
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 77 {
		t.Errorf("Version = %d, want the replayed 77", res.Version)
	}
	info, err := insp.GetTaskInfo(p.Queue, res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := Decode(info.Payload)
	want := Meta{Schema: 1, Version: 77, EnqueuedAt: testNow, Batch: "b1", Line: 3, Source: SourceRequeue, RequeuedFrom: "old"}
	if *got.Meta != want {
		t.Errorf("Meta = %+v, want %+v", *got.Meta, want)
	}
}

func TestProducerNeedsClientAndRedis(t *testing.T) {
	if _, err := (&Producer{}).Enqueue(context.Background(), valid("updateNoA")); err == nil {
		t.Error("Enqueue on an empty Producer did not fail")
	}
}

func TestProducerDefaultQueue(t *testing.T) {
	// A private server: the default queue must not touch the shared one.
	srv := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	res, err := NewProducer(rdb).Enqueue(context.Background(), futureUpdate())
	if err != nil {
		t.Fatal(err)
	}
	if res.Queue != DefaultLiveQueue || res.Version != 1 {
		t.Errorf("Enqueue = %+v, want queue %s, version 1", res, DefaultLiveQueue)
	}
	if n, err := rdb.Get(context.Background(), "dyplsq:version").Int64(); err != nil || n != 1 {
		t.Errorf("dyplsq:version = %d, %v; want 1", n, err)
	}
}

// TestProducerWarnings: an update with a field its OperateType does not use
// is queued without it, and the result says so.
func TestProducerWarnings(t *testing.T) {
	p, _, insp := newTestProducer(t)
	u := futureUpdate()
	u.OutId = "stale-order" // futureUpdate is an updateExpire
	res, err := p.Enqueue(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Field != "OutId" || !strings.Contains(res.Warnings[0].Reason, "left out of the API call") {
		t.Errorf("warnings %q", res.Warnings)
	}
	info, err := insp.GetTaskInfo(p.Queue, res.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(info.Payload), "stale-order") {
		t.Errorf("payload keeps the unused OutId: %s", info.Payload)
	}
}

// TestProducerIdempotencyKeyQueuedBefore: a key queued under its task id of
// before (idem-<hex>) is still queued only once.
func TestProducerIdempotencyKeyQueuedBefore(t *testing.T) {
	p, _, insp := newTestProducer(t)
	u := futureUpdate()
	u.IdempotencyKey = "order-7-expire"
	old := LegacyTaskIDForKey(u.IdempotencyKey)
	if _, err := p.Client.Enqueue(asynq.NewTask(TypeUpdateSubscription, []byte("{}")), asynq.Queue(p.Queue), asynq.TaskID(old)); err != nil {
		t.Fatal(err)
	}
	res, err := p.Enqueue(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.TaskID != old {
		t.Errorf("Enqueue = %+v, want a duplicate of %s", res, old)
	}
	if qi, err := insp.GetQueueInfo(p.Queue); err != nil || qi.Pending != 1 {
		t.Errorf("queue %+v, %v: want the one task", qi, err)
	}
}
