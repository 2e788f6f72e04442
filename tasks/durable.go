package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultDurableTimeout is how long a durable enqueue waits for its
// replicas when [Durability.Timeout] is zero: 2 s.
const DefaultDurableTimeout = 2 * time.Second

// Durability asks that an enqueue be confirmed only once Redis replicas
// hold it, so that a failover to one of them cannot lose it. Redis
// acknowledges a write as soon as the primary has it; replication follows
// asynchronously, and a primary that dies before passing a write on takes
// it with it.
type Durability struct {
	// Replicas is how many replicas must hold the write; at least 1.
	Replicas int
	// Timeout bounds the wait for them. Default: [DefaultDurableTimeout].
	Timeout time.Duration
}

// ErrNotReplicated is wrapped by the error of a durable enqueue that
// fewer replicas than asked confirmed in time. The job is queued on the
// primary and will most likely run; only a failover before the replicas
// catch up would lose it.
var ErrNotReplicated = errors.New("not confirmed by enough Redis replicas")

// NotReplicatedError says how many replicas confirmed a write, of how many
// asked, within the timeout. It wraps [ErrNotReplicated].
type NotReplicatedError struct {
	Want, Got int
	Timeout   time.Duration
}

func (e *NotReplicatedError) Error() string {
	return fmt.Sprintf("%v: %d of %d within %s", ErrNotReplicated, e.Got, e.Want, e.Timeout)
}

func (e *NotReplicatedError) Unwrap() error { return ErrNotReplicated }

// DurableMarkerKey is the key [WaitReplicas] writes before WAIT: it holds
// nothing of use, expires after a minute, and sits in the cluster slot of
// the queue's own keys.
func DurableMarkerKey(prefix, queue string) string {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return prefix + ":durable:{" + queue + "}"
}

// WaitReplicas returns nil once d.Replicas replicas of the primary holding
// queue's keys have every write that primary acknowledged before the call,
// a [*NotReplicatedError] when fewer did within d.Timeout, or the Redis
// error.
//
// Redis's WAIT counts only the writes of the connection it is sent on, and
// a pooled client sends the enqueue on any connection. So WaitReplicas
// writes a marker key on one connection and sends WAIT on that same one:
// replication is one ordered stream, so a replica holding the marker holds
// every write the primary acknowledged before it.
func WaitReplicas(ctx context.Context, rdb redis.UniversalClient, prefix, queue string, d Durability) error {
	if d.Replicas < 1 {
		return fmt.Errorf("tasks: durable enqueue: Replicas is %d, want at least 1", d.Replicas)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDurableTimeout
	}
	key := DurableMarkerKey(prefix, queue)
	var node *redis.Client
	switch c := rdb.(type) {
	case *redis.Client:
		node = c
	case *redis.ClusterClient:
		var err error
		if node, err = c.MasterForKey(ctx, key); err != nil {
			return fmt.Errorf("tasks: durable enqueue: find the primary of %s: %w", queue, err)
		}
	default:
		return fmt.Errorf("tasks: durable enqueue: %T is not supported, only one server, Sentinel or Cluster", rdb)
	}
	conn := node.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, key, "1", time.Minute).Err(); err != nil {
		return fmt.Errorf("tasks: durable enqueue: %w", err)
	}
	got, err := conn.Wait(ctx, d.Replicas, timeout).Result()
	if err != nil {
		return fmt.Errorf("tasks: durable enqueue: WAIT: %w", err)
	}
	if int(got) < d.Replicas {
		return &NotReplicatedError{Want: d.Replicas, Got: int(got), Timeout: timeout}
	}
	return nil
}
