package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// NextVersions takes a block of n consecutive versions from the counter at
// [VersionKey](prefix) in one INCRBY and returns the first; the block is
// first, first+1, ..., first+n-1. Versions start at 1.
func NextVersions(ctx context.Context, rdb redis.UniversalClient, prefix string, n int64) (first int64, err error) {
	if n < 1 {
		return 0, fmt.Errorf("tasks: NextVersions: n is %d, want at least 1", n)
	}
	last, err := rdb.IncrBy(ctx, VersionKey(prefix), n).Result()
	if err != nil {
		return 0, fmt.Errorf("tasks: take %d version(s) from %s: %w", n, VersionKey(prefix), err)
	}
	return last - n + 1, nil
}

// Producer enqueues binding updates with a version taken at enqueue time,
// the strongest ordering guarantee dyplsq gives. To a queue split into
// shards (see [Layout]) it queues each update to its binding's shard. It is
// safe for concurrent use once its fields are set.
type Producer struct {
	// Client enqueues the tasks. Required.
	Client *asynq.Client

	// Redis holds the version counter ([VersionKey]); normally the client
	// Client was made from. Required.
	Redis redis.UniversalClient

	// Queue is the queue tasks go to unless an option says otherwise
	// (or its binding's shard, when the queue is split). Default:
	// [DefaultLiveQueue].
	Queue string

	// KeyPrefix is the prefix of dyplsq's own Redis keys; it must match the
	// worker's. Default: [DefaultKeyPrefix].
	KeyPrefix string

	// Now returns the current time, for validation and Meta.EnqueuedAt.
	// Default: time.Now.
	Now func() time.Time

	// Durable, when set, confirms each enqueue only once that many Redis
	// replicas hold it ([WaitReplicas]); Enqueue returns an error wrapping
	// [ErrNotReplicated] otherwise, with the Result of the job, which is
	// queued. Default: nil, confirmed once the primary has it.
	Durable *Durability

	// The layouts of the queues it queued to (see [Layout]), read again
	// after layoutTTL.
	layoutMu sync.Mutex
	layouts  map[string]cachedLayout
}

// cachedLayout is a queue's layout as read at a time.
type cachedLayout struct {
	l  Layout
	at time.Time
}

// layoutTTL is how long a [Producer] routes by a queue's layout before it
// reads it again: after a worker splits a queue, its producers route to
// the shards within this long (until then, the queue itself gets the jobs,
// and is served too).
const layoutTTL = 5 * time.Second

// route returns the queue an update of binding subsID queued to queue goes
// to: its shard when queue is split.
func (p *Producer) route(ctx context.Context, queue, subsID string) (string, error) {
	p.layoutMu.Lock()
	c, ok := p.layouts[queue]
	p.layoutMu.Unlock()
	if !ok || time.Since(c.at) > layoutTTL {
		l, err := ReadLayout(ctx, p.Redis, p.KeyPrefix, queue)
		if err != nil {
			return "", err
		}
		c = cachedLayout{l: l, at: time.Now()}
		p.layoutMu.Lock()
		if p.layouts == nil {
			p.layouts = map[string]cachedLayout{}
		}
		p.layouts[queue] = c
		p.layoutMu.Unlock()
	}
	return c.l.QueueFor(subsID), nil
}

// NewProducer returns a Producer that enqueues through rdb and takes
// versions from it, with the default queue and key prefix. The caller keeps
// ownership of rdb and closes it.
func NewProducer(rdb redis.UniversalClient) *Producer {
	return &Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb}
}

// Result describes one enqueued update.
type Result struct {
	// TaskID is the asynq task id (derived from the IdempotencyKey if set).
	TaskID string
	// Queue is the queue the task is in.
	Queue string
	// Version is the version the task carries; 0 when Duplicate.
	Version int64
	// Duplicate reports that a task with the same id was already queued
	// (same IdempotencyKey, or same TaskID option), so nothing was added.
	Duplicate bool
	// Warnings are what [Update.Warnings] says about the update: fields
	// the OperateType does not use (left out of the job), an Expiration
	// less than ten minutes ahead.
	Warnings []Problem
}

// Enqueue normalizes and validates u, takes a version, sets u.Meta (schema,
// version, enqueue time in UTC, source "api") and enqueues the task built by
// [NewTask] with opts.
//
// An invalid update returns a [*ValidationError] and queues nothing. An
// update whose task id is already taken (same IdempotencyKey within the
// task's life) is not an error: Enqueue returns a Result with Duplicate set.
//
// Batch, Line, Source and RequeuedFrom already set in u.Meta are kept, and
// so is a positive u.Meta.Version: set one only to replay a job that already
// had it, since a version decides which update of a binding field wins.
func (p *Producer) Enqueue(ctx context.Context, u Update, opts ...asynq.Option) (Result, error) {
	if p.Client == nil || p.Redis == nil {
		return Result{}, errors.New("tasks: Producer needs both Client and Redis (see NewProducer)")
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	t := now()
	u.Normalize()
	if err := u.Validate(t); err != nil {
		return Result{}, err
	}
	warnings := u.Warnings(t)

	m := Meta{}
	if u.Meta != nil {
		m = *u.Meta
	}
	m.Schema = SchemaVersion
	m.EnqueuedAt = t.UTC()
	if m.Source == "" {
		m.Source = SourceAPI
	}
	if m.Version <= 0 {
		v, err := NextVersions(ctx, p.Redis, p.KeyPrefix, 1)
		if err != nil {
			return Result{}, err
		}
		m.Version = v
	}
	u.Meta = &m

	queue := p.Queue
	if queue == "" {
		queue = DefaultLiveQueue
	}
	all := append(append(defaultOptions(u), asynq.Queue(queue)), opts...)
	// A split queue: its shard for the binding.
	routed, err := p.route(ctx, queueOf(all), u.SubsId)
	if err != nil {
		return Result{}, err
	}
	all = append(all, asynq.Queue(routed))
	if q, id := optionTargets(all); u.IdempotencyKey != "" && id == TaskIDForKey(u.IdempotencyKey) {
		// The key may be queued under its id of before.
		legacy, taken, err := LegacyKeyTask(asynq.NewInspectorFromRedisClient(p.Redis), q, u.IdempotencyKey)
		if err != nil {
			return Result{}, fmt.Errorf("tasks: enqueue to %s: %w", q, err)
		}
		if taken {
			return Result{TaskID: legacy, Queue: q, Duplicate: true, Warnings: warnings}, nil
		}
	}
	task, err := newTask(u, t, all)
	if err != nil {
		return Result{}, err
	}
	primary := ""
	if p.Durable != nil {
		if primary, err = PrimaryID(ctx, p.Redis, p.KeyPrefix, queueOf(all)); err != nil {
			return Result{}, err
		}
	}
	info, err := p.Client.EnqueueContext(ctx, task)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		q, id := optionTargets(all)
		return Result{TaskID: id, Queue: q, Duplicate: true, Warnings: warnings}, nil
	case err != nil:
		return Result{}, fmt.Errorf("tasks: enqueue to %s: %w", queue, err)
	}
	res := Result{TaskID: info.ID, Queue: info.Queue, Version: m.Version, Warnings: warnings}
	if p.Durable != nil {
		if err := WaitReplicas(ctx, p.Redis, p.KeyPrefix, info.Queue, primary, *p.Durable); err != nil {
			return res, fmt.Errorf("tasks: task %s: %w", info.ID, err)
		}
	}
	return res, nil
}

// optionTargets returns the queue and task id the options select (the last
// of each wins, as in asynq).
func optionTargets(opts []asynq.Option) (queue, taskID string) {
	for _, o := range opts {
		switch o.Type() {
		case asynq.QueueOpt:
			queue, _ = o.Value().(string)
		case asynq.TaskIDOpt:
			taskID, _ = o.Value().(string)
		}
	}
	return queue, taskID
}

// queueOf returns the queue the options select.
func queueOf(opts []asynq.Option) string {
	q, _ := optionTargets(opts)
	return q
}
