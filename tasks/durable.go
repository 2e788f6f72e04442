package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// Failover: the primary changed since the write (Got is then 0).
	Failover bool
}

func (e *NotReplicatedError) Error() string {
	if e.Failover {
		return fmt.Sprintf("%v: the Redis primary changed since the write (a failover), which may have lost it", ErrNotReplicated)
	}
	return fmt.Sprintf("%v: %d of %d within %s", ErrNotReplicated, e.Got, e.Want, e.Timeout)
}

func (e *NotReplicatedError) Unwrap() error { return ErrNotReplicated }

// PrimaryID returns the replication id of the primary holding queue's keys
// (INFO replication's master_replid). A replica promoted to primary takes a
// new one, so [WaitReplicas] can tell a failover happened since.
func PrimaryID(ctx context.Context, rdb redis.UniversalClient, prefix, queue string) (string, error) {
	node, err := primaryOf(ctx, rdb, DurableMarkerKey(prefix, queue))
	if err != nil {
		return "", err
	}
	return replID(ctx, node)
}

// WaitReplicas returns nil once d.Replicas replicas of the primary holding
// queue's keys have every write that primary acknowledged before the call,
// a [*NotReplicatedError] when fewer did within d.Timeout or when that
// primary is no longer the one whose [PrimaryID] was primaryID (a failover
// in between: writes made before it may be lost), or the Redis error.
//
// Redis's WAIT counts only the writes of the connection it is sent on, and
// a pooled client sends the enqueue on any connection. So WaitReplicas
// writes a marker key on one connection and sends WAIT on that same one:
// replication is one ordered stream, so a replica holding the marker holds
// every write the primary acknowledged before it. Do not retry it after a
// connection error: on a new primary it would confirm writes that the old
// one took with it.
func WaitReplicas(ctx context.Context, rdb redis.UniversalClient, prefix, queue, primaryID string, d Durability) error {
	if d.Replicas < 1 {
		return fmt.Errorf("tasks: durable enqueue: Replicas is %d, want at least 1", d.Replicas)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDurableTimeout
	}
	key := DurableMarkerKey(prefix, queue)
	node, err := primaryOf(ctx, rdb, key)
	if err != nil {
		return err
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
	id, err := replID(ctx, conn)
	if err != nil {
		return err
	}
	if id != primaryID {
		return &NotReplicatedError{Want: d.Replicas, Timeout: timeout, Failover: true}
	}
	return nil
}

// primaryOf returns the client of the server holding key.
func primaryOf(ctx context.Context, rdb redis.UniversalClient, key string) (*redis.Client, error) {
	switch c := rdb.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("tasks: durable enqueue: find the primary of %s: %w", key, err)
		}
		return node, nil
	}
	return nil, fmt.Errorf("tasks: durable enqueue: %T is not supported, only one server, Sentinel or Cluster", rdb)
}

// replID reads master_replid from INFO replication.
func replID(ctx context.Context, c redis.Cmdable) (string, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return "", fmt.Errorf("tasks: durable enqueue: INFO replication: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_replid:"); ok {
			return v, nil
		}
	}
	return "", errors.New("tasks: durable enqueue: INFO replication shows no master_replid")
}
