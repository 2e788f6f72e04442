package tasks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

// primaryWithReplica starts a private primary and one replica of it, and
// returns clients of both once the replica is in sync.
func primaryWithReplica(t *testing.T) (primary, replica *redis.Client, replicaProc *redistest.Proc) {
	t.Helper()
	p := redistest.Server(t)
	host, port, _ := strings.Cut(p.Addr, ":")
	r := redistest.Server(t, "--replicaof", host, port)
	primary = redis.NewClient(&redis.Options{Addr: p.Addr})
	replica = redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { primary.Close(); replica.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := replica.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return primary, replica, r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica of %s not in sync: %s", p.Addr, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDurableEnqueueIsOnTheReplicaWhenConfirmed(t *testing.T) {
	t.Parallel()
	primary, replica, replicaProc := primaryWithReplica(t)
	p := NewProducer(primary)
	p.Durable = &Durability{Replicas: 1, Timeout: time.Second}
	ctx := context.Background()
	for range 20 {
		res, err := p.Enqueue(ctx, futureUpdate())
		if err != nil {
			t.Fatalf("durable enqueue with a replica: %v", err)
		}
		// Confirmed: the replica holds the task now, not eventually.
		if n := replica.Exists(ctx, "asynq:{"+res.Queue+"}:t:"+res.TaskID).Val(); n != 1 {
			t.Fatalf("task %s confirmed but not on the replica", res.TaskID)
		}
	}

	p.Durable = &Durability{Replicas: 2, Timeout: 300 * time.Millisecond}
	start := time.Now()
	res, err := p.Enqueue(ctx, futureUpdate())
	var nr *NotReplicatedError
	if !errors.As(err, &nr) || !errors.Is(err, ErrNotReplicated) || nr.Got != 1 || nr.Want != 2 {
		t.Fatalf("durable enqueue asking 2 replicas of 1: %v, want 1 of 2 confirmed", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("refusal took %s, want about the 300ms timeout", d)
	}
	if res.TaskID == "" {
		t.Error("an unconfirmed enqueue returns no task id: the caller cannot tell what was queued")
	}

	id, err := PrimaryID(ctx, primary, "", DefaultLiveQueue)
	if err != nil || id == "" {
		t.Fatalf("PrimaryID = %q, %v", id, err)
	}
	if err := WaitReplicas(ctx, primary, "", DefaultLiveQueue, "a primary before a failover", Durability{Replicas: 1}); !errors.As(err, &nr) || !nr.Failover {
		t.Fatalf("WaitReplicas on another primary than the write's: %v, want a failover refusal", err)
	}

	replicaProc.Stop()
	p.Durable = &Durability{Replicas: 1, Timeout: 200 * time.Millisecond}
	if _, err := p.Enqueue(ctx, futureUpdate()); !errors.As(err, &nr) || nr.Got != 0 {
		t.Fatalf("durable enqueue with the replica down: %v, want 0 of 1 confirmed", err)
	}
	p.Durable = nil
	if _, err := p.Enqueue(ctx, futureUpdate()); err != nil {
		t.Fatalf("default enqueue with the replica down: %v", err)
	}
}

func TestWaitReplicasNeedsOne(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if err := WaitReplicas(context.Background(), c, "", DefaultLiveQueue, "", Durability{}); err == nil {
		t.Fatal("WaitReplicas with Replicas 0: nil, want an error")
	}
}
