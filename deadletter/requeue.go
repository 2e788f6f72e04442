package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/tasks"
)

// Codes of an [Outcome].
const (
	// OutcomeRequeued: the job is queued again and its record deleted.
	OutcomeRequeued = "requeued"
	// OutcomePurged: the archived task and the record are deleted.
	OutcomePurged = "purged"
	// OutcomeWouldRequeue and OutcomeWouldPurge: what a dry run would do.
	OutcomeWouldRequeue = "would requeue"
	OutcomeWouldPurge   = "would purge"
	// OutcomeLive: a task with this id is live in asynq (pending, active,
	// scheduled, retrying or completed within its retention), so it was not
	// requeued and the record is kept.
	OutcomeLive = "live"
	// OutcomeFailed: the record could not be worked; Outcome.Err says why.
	OutcomeFailed = "failed"
	// OutcomeChanged: the record changed after it was read (the job died
	// again meanwhile), so it was kept; run the command again to work it.
	OutcomeChanged = "changed"
	// OutcomeBatchCancelled: the job is a row of a CLI batch that was
	// cancelled, so it was not requeued (a worker would end it without a
	// call) and the record is kept: export it and queue the rows as a new
	// file to run them.
	OutcomeBatchCancelled = "batch cancelled"
	// OutcomeRanAgain: the job ran again after it died (its task was run
	// from the web UI's archive) and completed, which no dead job does, so
	// the record no longer stood and was deleted (kept in a dry run). A
	// later job given the same task id does not count: that record is
	// reported OutcomeLive.
	OutcomeRanAgain = "ran again"
	// OutcomeTooOld: the job's version was taken more than
	// tasks.VersionWindow ago, beyond what the worker's fences remember,
	// so it was not requeued and the record is kept: export it and queue
	// the file to apply it as a new update.
	OutcomeTooOld = "too old"
)

// Options of a requeued task.
const (
	requeueMaxRetry  = 1000 // the handler keeps its own, fresh, attempt budget
	requeueRetention = 24 * time.Hour
	requeueTimeout   = 5 * time.Minute
)

// Outcome is what a [Requeuer] did, or would do, with one record.
type Outcome struct {
	TaskID string
	Code   string // one of the Outcome constants
	Err    error  // why, for OutcomeFailed (and a requeued job whose record could not be deleted)
}

// Requeuer sends dead jobs back to their queue or purges them.
type Requeuer struct {
	// Store holds the records to work.
	Store *Store
	// Inspector deletes archived tasks and tells live ones.
	Inspector *asynq.Inspector
	// Client enqueues the requeued jobs.
	Client *asynq.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Cancelled, when set, reports whether a CLI batch was cancelled; a
	// record of a cancelled batch's row is then kept, not requeued.
	Cancelled func(ctx context.Context, batch string) (bool, error)
}

func (q *Requeuer) now() time.Time {
	if q.Now != nil {
		return q.Now()
	}
	return time.Now()
}

// Requeue queues every job matching f again, oldest first: it deletes the
// archived asynq task, enqueues the same payload with the same task id to
// the same queue, and deletes the record. The payload's "_meta" gains
// "requeues" (previous + 1), "requeued_at" (now) and "source": "requeue";
// "version" is kept, so a job overtaken by a newer update is superseded by
// the worker rather than applied, and the worker gives the job a fresh
// attempt budget and max-age clock from "requeues" and "requeued_at".
//
// A job whose task id is live in asynq is reported [OutcomeLive] and its
// record kept. With dryRun nothing changes and the outcomes say what would
// happen. The error is for failures that stop the whole run (reading the
// records, a cancelled context); each record's own failure is in its Outcome.
func (q *Requeuer) Requeue(ctx context.Context, f Filter, dryRun bool) ([]Outcome, error) {
	var out []Outcome
	err := q.Store.each(ctx, f, func(r Record, stored []byte) error {
		o := q.requeue(ctx, r, stored, dryRun)
		out = append(out, o)
		return ctx.Err()
	})
	return out, err
}

func (q *Requeuer) requeue(ctx context.Context, r Record, stored []byte, dryRun bool) Outcome {
	o := Outcome{TaskID: r.TaskID}
	fail := func(err error) Outcome {
		o.Code, o.Err = OutcomeFailed, err
		return o
	}
	if r.Type == "" || r.Queue == "" {
		return fail(errors.New("record has no task type or queue"))
	}
	payload, err := requeuePayload(r.Payload, r, q.now())
	if err != nil {
		return fail(err)
	}
	if vt := versionTime(r.Payload, r); !vt.IsZero() && q.now().Sub(vt) > tasks.VersionWindow {
		o.Code = OutcomeTooOld
		return o
	}
	if r.Batch != "" && q.Cancelled != nil {
		cancelled, err := q.Cancelled(ctx, r.Batch)
		if err != nil {
			return fail(err)
		}
		if cancelled {
			o.Code = OutcomeBatchCancelled
			return o
		}
	}
	live, err := q.removeArchived(r, dryRun)
	switch {
	case err != nil:
		return fail(err)
	case ranAgain(r, live):
		o.Code = OutcomeRanAgain
		if !dryRun {
			if _, err := q.Store.deleteIfUnchanged(ctx, r.TaskID, stored); err != nil {
				return fail(err)
			}
		}
		return o
	case live != nil:
		o.Code = OutcomeLive
		return o
	case dryRun:
		o.Code = OutcomeWouldRequeue
		return o
	}
	queue, err := q.queueFor(ctx, r)
	if err != nil {
		return fail(err)
	}
	task := asynq.NewTask(r.Type, payload)
	_, err = q.Client.EnqueueContext(ctx, task,
		asynq.TaskID(r.TaskID), asynq.Queue(queue),
		asynq.MaxRetry(requeueMaxRetry), asynq.Retention(requeueRetention), asynq.Timeout(requeueTimeout))
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		o.Code = OutcomeLive
		return o
	case err != nil:
		return fail(fmt.Errorf("enqueue: %w", err))
	}
	o.Code = OutcomeRequeued
	// Delete the record only as it was read: should the job already have
	// died again, its new record stays.
	if _, err := q.Store.deleteIfUnchanged(ctx, r.TaskID, stored); err != nil {
		o.Err = fmt.Errorf("queued, but the record stays: %w", err)
	}
	return o
}

// queueFor returns the queue a requeued job goes to: the queue it died in,
// unless that is a shard of a queue split otherwise since, or no longer
// split (see tasks.Layout), when it goes to its binding's shard of the split
// in force, or to the queue itself: a queue workers serve. A queue merely
// named like a shard ("<queue>.<n>") of a queue never split is kept.
func (q *Requeuer) queueFor(ctx context.Context, r Record) (string, error) {
	base, ok := tasks.ShardBase(r.Queue)
	if !ok {
		return r.Queue, nil
	}
	l, err := tasks.ReadLayout(ctx, q.Store.Redis, q.Store.Prefix, base)
	if err != nil {
		return "", err
	}
	if slices.Contains(l.Names(), r.Queue) {
		return r.Queue, nil
	}
	if l.Shards == 0 {
		return r.Queue, nil // never split: a queue merely named like a shard
	}
	return l.QueueFor(r.SubsId), nil
}

// Purge deletes every record matching f and its archived asynq task. A task
// with the same id that is live in asynq is left alone; only the record goes.
// A record is deleted only as the walk read it: one that changed meanwhile
// (the job died again) is kept and reported [OutcomeChanged]. With dryRun
// nothing changes.
//
// The archived task goes before the record, so that a sweep that read the
// archive before the purge and finds the record gone sees the task gone too
// when it checks, and takes back the record it wrote.
func (q *Requeuer) Purge(ctx context.Context, f Filter, dryRun bool) ([]Outcome, error) {
	var out []Outcome
	err := q.Store.each(ctx, f, func(r Record, stored []byte) error {
		o := Outcome{TaskID: r.TaskID, Code: OutcomePurged}
		if dryRun {
			o.Code = OutcomeWouldPurge
		}
		if _, err := q.removeArchived(r, dryRun); err != nil {
			o.Code, o.Err = OutcomeFailed, err
		} else if !dryRun {
			deleted, err := q.Store.deleteIfUnchanged(ctx, r.TaskID, stored)
			switch {
			case err != nil:
				o.Code, o.Err = OutcomeFailed, err
			case !deleted:
				o.Code = OutcomeChanged
			}
		}
		out = append(out, o)
		return ctx.Err()
	})
	return out, err
}

// removeArchived deletes r's task from the asynq archive (only from the
// archive: a live task with that id is returned, not touched; nil means
// there is none now). A task or queue that no longer exists is fine. With
// dryRun it only looks.
func (q *Requeuer) removeArchived(r Record, dryRun bool) (live *asynq.TaskInfo, err error) {
	info, err := q.Inspector.GetTaskInfo(r.Queue, r.TaskID)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("look up task: %w", err)
	case info.State != asynq.TaskStateArchived:
		return info, nil
	case dryRun:
		return nil, nil
	}
	err = q.Inspector.DeleteTask(r.Queue, r.TaskID)
	if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		return nil, fmt.Errorf("delete archived task: %w", err)
	}
	return nil, nil
}
