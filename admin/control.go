package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/batch"
)

// QueueStatus is a snapshot of one asynq queue.
type QueueStatus struct {
	Queue string
	// Paused is true while workers do not take tasks from the queue.
	Paused bool
	// Size is the number of tasks in the queue, in any state but completed.
	Size, Pending, Active, Scheduled, Retry, Archived, Completed int
	// Latency is the age of the oldest pending task.
	Latency time.Duration
	// Processed and Failed count today's tasks (UTC; reset daily).
	Processed, Failed int
}

// Control pauses, resumes and reports on queues.
type Control struct {
	Inspector *asynq.Inspector
	// Halts, when set, adds the fleet's halts to Status and lets Status see
	// that a queue not created yet is paused.
	Halts *Halts
}

// Pause stops workers taking tasks from queues (tasks already running
// finish). Pausing a paused queue, or a queue with no task yet, is fine.
func (c *Control) Pause(ctx context.Context, queues ...string) error {
	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.Inspector.PauseQueue(q); err != nil && !strings.Contains(err.Error(), "already paused") {
			return fmt.Errorf("admin: pause queue %q: %w", q, err)
		}
	}
	return nil
}

// Resume lets workers take tasks from queues again. Resuming a queue that is
// not paused is fine.
func (c *Control) Resume(ctx context.Context, queues ...string) error {
	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.Inspector.UnpauseQueue(q); err != nil && !strings.Contains(err.Error(), "not paused") {
			return fmt.Errorf("admin: resume queue %q: %w", q, err)
		}
	}
	return nil
}

// Status reports on queues (every queue asynq knows when none is given, in
// name order) and lists the halts. A queue that does not exist yet reports
// zeros, not an error.
func (c *Control) Status(ctx context.Context, queues ...string) ([]QueueStatus, []Halt, error) {
	known, err := c.Inspector.Queues()
	if err != nil {
		return nil, nil, fmt.Errorf("admin: list queues: %w", err)
	}
	if len(queues) == 0 {
		queues = slices.Sorted(slices.Values(known))
	}
	out := make([]QueueStatus, 0, len(queues))
	for _, q := range queues {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		st, err := c.queueStatus(ctx, q, slices.Contains(known, q))
		if err != nil {
			return nil, nil, err
		}
		out = append(out, st)
	}
	var halts []Halt
	if c.Halts != nil {
		if halts, err = c.Halts.List(ctx); err != nil {
			return nil, nil, err
		}
	}
	return out, halts, nil
}

func (c *Control) queueStatus(ctx context.Context, q string, known bool) (QueueStatus, error) {
	if !known {
		return c.emptyStatus(ctx, q)
	}
	info, err := c.Inspector.GetQueueInfo(q)
	if err != nil {
		if queueMissing(err) {
			return c.emptyStatus(ctx, q) // removed since the queue list was read
		}
		return QueueStatus{}, fmt.Errorf("admin: queue %q: %w", q, err)
	}
	return QueueStatus{
		Queue: q, Paused: info.Paused,
		Size: info.Size, Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
		Retry: info.Retry, Archived: info.Archived, Completed: info.Completed,
		Latency: info.Latency, Processed: info.Processed, Failed: info.Failed,
	}, nil
}

// emptyStatus is the status of a queue asynq has not created yet: all
// zeros, but it may already be paused.
func (c *Control) emptyStatus(ctx context.Context, q string) (QueueStatus, error) {
	st := QueueStatus{Queue: q}
	if c.Halts == nil || c.Halts.Redis == nil {
		return st, nil
	}
	n, err := c.Halts.Redis.Exists(ctx, pausedKey(q)).Result()
	if err != nil {
		return QueueStatus{}, fmt.Errorf("admin: queue %q: %w", q, err)
	}
	st.Paused = n > 0
	return st, nil
}

// queueMissing reports an error of GetQueueInfo for a queue that does not
// exist: asynq v0.26 returns its internal QueueNotFoundError there, not
// [asynq.ErrQueueNotFound].
func queueMissing(err error) bool {
	return errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "does not exist")
}

// JobsToRun returns how many jobs of queue q a worker still has to run:
// pending, active, scheduled, retrying and aggregating ones (not archived
// or completed); 0 for a queue asynq does not know.
func JobsToRun(insp *asynq.Inspector, q string) (int, error) {
	info, err := insp.GetQueueInfo(q)
	if err != nil {
		if queueMissing(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("admin: queue %q: %w", q, err)
	}
	return info.Pending + info.Active + info.Scheduled + info.Retry + info.Aggregating, nil
}

// RunHalted moves the jobs of queues that wait in the retry set because a
// worker was halted (their last error starts with "halted") to pending, so
// that they run now rather than at a probe time chosen by a worker that
// may be gone. It returns how many it moved.
func (c *Control) RunHalted(ctx context.Context, queues ...string) (int, error) {
	moved := 0
	for _, q := range queues {
		page := 1
		for {
			if err := ctx.Err(); err != nil {
				return moved, err
			}
			ts, err := c.Inspector.ListRetryTasks(q, asynq.PageSize(500), asynq.Page(page))
			if err != nil {
				if queueMissing(err) {
					break
				}
				return moved, fmt.Errorf("admin: list retry tasks of %q: %w", q, err)
			}
			if len(ts) == 0 {
				break
			}
			n := 0
			for _, t := range ts {
				if !strings.HasPrefix(t.LastErr, batch.OutcomeHalted) {
					continue
				}
				if err := c.Inspector.RunTask(q, t.ID); err != nil {
					continue // it ran or moved meanwhile
				}
				n++
			}
			moved += n
			if n == 0 {
				page++ // the moved ones left the set; otherwise read on
			}
		}
	}
	return moved, nil
}

// WorkerStatus is one live worker process, from asynq's heartbeat.
type WorkerStatus struct {
	ID, Host string
	PID      int
	// Concurrency is how many jobs it runs at once, Queues the queues it
	// serves with their weights, Active how many jobs it runs now.
	Concurrency int
	Queues      map[string]int
	Active      int
	// Status is asynq's ("active", "closed"); Started when it started;
	// Heartbeat when it last reported (asynq reports every 5 s and drops
	// a server silent for 10 s).
	Status             string
	Started, Heartbeat time.Time
	// Halt is the worker's halt, or nil.
	Halt *Halt
}

// heartbeatTTL is how long asynq keeps a server's heartbeat (twice its
// 5 s interval): the heartbeat was written this long before it expires.
const heartbeatTTL = 10 * time.Second

// Workers lists the live worker processes (asynq servers that sent a
// heartbeat lately), with the halts of those that are halted.
func (c *Control) Workers(ctx context.Context) ([]WorkerStatus, error) {
	srvs, err := c.Inspector.Servers()
	if err != nil {
		return nil, fmt.Errorf("admin: list workers: %w", err)
	}
	var halts []Halt
	if c.Halts != nil {
		if halts, err = c.Halts.List(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]WorkerStatus, 0, len(srvs))
	for _, s := range srvs {
		w := WorkerStatus{ID: s.ID, Host: s.Host, PID: s.PID, Concurrency: s.Concurrency, Queues: s.Queues,
			Active: len(s.ActiveWorkers), Status: s.Status, Started: s.Started}
		if c.Halts != nil && c.Halts.Redis != nil {
			if exp, err := c.Halts.Redis.ZScore(ctx, asynqServersKey, asynqServerKey(s.Host, s.PID, s.ID)).Result(); err == nil {
				w.Heartbeat = time.Unix(int64(exp), 0).Add(-heartbeatTTL)
			}
		}
		for i := range halts {
			if halts[i].Host == s.Host && halts[i].PID == s.PID {
				w.Halt = &halts[i]
			}
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].PID < out[j].PID
	})
	return out, nil
}

// Unserved returns the queues among qs with jobs waiting (pending, or
// due to retry or run later) that no live worker serves. A paused queue
// is left out: nothing is meant to run it until it is resumed.
func Unserved(qs []QueueStatus, ws []WorkerStatus) []QueueStatus {
	var out []QueueStatus
	for _, q := range qs {
		if q.Paused || q.Pending+q.Retry+q.Scheduled == 0 {
			continue
		}
		served := false
		for _, w := range ws {
			if _, ok := w.Queues[q.Queue]; ok {
				served = true
				break
			}
		}
		if !served {
			out = append(out, q)
		}
	}
	return out
}
