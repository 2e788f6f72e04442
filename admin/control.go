package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
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

// pausedKey is the key asynq v0.26 sets while queue q is paused
// (internal/base.PausedKey), readable before the queue exists.
func pausedKey(q string) string { return "asynq:{" + q + "}:paused" }

// queueMissing reports an error of GetQueueInfo for a queue that does not
// exist: asynq v0.26 returns its internal QueueNotFoundError there, not
// [asynq.ErrQueueNotFound].
func queueMissing(err error) bool {
	return errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "does not exist")
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
				if !strings.HasPrefix(t.LastErr, "halted") {
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
