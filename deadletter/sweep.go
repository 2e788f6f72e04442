package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/dypls"
)

// Sweeper writes a record for every archived asynq task that has none: jobs
// archived outside dyplsq's handler, when a lease expired on the last
// attempt or an operator archived a task in the web UI. The worker runs it
// periodically, so every path into the archive leaves a record.
type Sweeper struct {
	// Store receives the records.
	Store *Store
	// Inspector reads the archives.
	Inspector *asynq.Inspector
	// Queues are the queues to sweep.
	Queues []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sweep reads the archive of each queue a page at a time and writes the
// records that are missing, returning how many it wrote. A queue that does
// not exist yet is skipped. Records written meanwhile by the handler are
// never overwritten.
func (s *Sweeper) Sweep(ctx context.Context) (written int, err error) {
	for _, q := range s.Queues {
		n, err := s.sweepQueue(ctx, q)
		written += n
		if err != nil {
			return written, fmt.Errorf("deadletter: sweep queue %s: %w", q, err)
		}
	}
	return written, nil
}

func (s *Sweeper) sweepQueue(ctx context.Context, queue string) (int, error) {
	written := 0
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		infos, err := s.Inspector.ListArchivedTasks(queue, asynq.PageSize(pageSize), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return written, nil
		}
		if err != nil {
			return written, err
		}
		missing, err := s.missing(ctx, infos)
		if err != nil {
			return written, err
		}
		for _, info := range missing {
			ok, err := s.Store.putIfAbsent(ctx, s.record(info))
			if err != nil {
				return written, err
			}
			if ok {
				written++
			}
		}
		if len(infos) < pageSize {
			return written, nil
		}
	}
}

// missing returns the tasks of infos that have no record, checked with one
// pipeline of EXISTS.
func (s *Sweeper) missing(ctx context.Context, infos []*asynq.TaskInfo) ([]*asynq.TaskInfo, error) {
	if len(infos) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.IntCmd, len(infos))
	_, err := s.Store.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, info := range infos {
			cmds[i] = p.Exists(ctx, s.Store.RecordKey(info.ID))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*asynq.TaskInfo
	for i, cmd := range cmds {
		if cmd.Val() == 0 {
			out = append(out, infos[i])
		}
	}
	return out, nil
}

// record builds the record of an archived task found without one.
func (s *Sweeper) record(info *asynq.TaskInfo) Record {
	r := Record{
		TaskID:      info.ID,
		Queue:       info.Queue,
		Type:        info.Type,
		Code:        CodeArchived,
		Reason:      ReasonOperator,
		Message:     dypls.Mask(info.LastErr),
		Attempts:    info.Retried,
		LastFailure: info.LastFailedAt,
		DiedAt:      info.LastFailedAt,
	}
	if strings.Contains(info.LastErr, "lease expired") {
		r.Code, r.Reason = CodeLeaseExpired, ReasonLeaseExpired
	}
	if r.DiedAt.IsZero() {
		r.DiedAt = s.now()
	}
	r.FirstFailure = info.LastFailedAt // the earliest failure the archive still tells
	r.SetPayload(info.Payload)
	return r
}

func (s *Sweeper) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
