package deadletter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/mask"
)

// Sweeper makes sure that every job in the asynq archive is accounted for,
// however it got there: by dyplsq's handler, or outside it, when a lease
// expired on the last attempt, asynq's own MaxRetry ran out, a job of a
// newer payload schema was retried until asynq gave up, or an operator
// archived a task in the web UI. For each archived task it
//
//   - writes the dead-letter record if there is none, classified by what
//     asynq tells of the task (see [Sweeper.Sweep]), record and index entry
//     together;
//   - indexes a record that its index lost;
//   - ends the task's CLI batch row dead with the record's code, if the row
//     is still open (pending, retrying or halted);
//   - deletes, a page of records a sweep, the record of a task that ran
//     again and completed (see [Sweeper.dropRanAgain]).
//
// A task archived after its job ended (see [EndedBeforeArchive]) is no
// dead letter: the sweep writes no record for it, deletes the record of
// its job it had, and ends its open row as the job's result says.
//
// The worker runs it periodically, so every path into the archive leaves a
// record and ends its row.
type Sweeper struct {
	// Store receives the records.
	Store *Store
	// Inspector reads the archives.
	Inspector *asynq.Inspector
	// Queues are the queues to sweep.
	Queues []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Batches holds the CLI batches whose rows the sweep ends; nil leaves
	// batch rows alone.
	Batches *batch.Store
}

// A sweep checks a page of records against their tasks (dropRanAgain):
// checkRounds-th of the index, at least checkPageMin and at most
// checkPageMax records. The workers share the cursor, so one worker
// sweeping every minute walks an index of up to 720,000 records within 6
// hours, well inside the 24 hours asynq keeps a completed task.
const (
	checkRounds  = 360
	checkPageMin = 100
	checkPageMax = 2000
)

// Sweep reads the archive of each queue a page at a time, writes the
// records that are missing, repairs their index and ends open batch rows.
// It returns how many records it wrote. A queue that does not exist yet is
// skipped. Records written meanwhile by the handler are never overwritten,
// and a row the handler ended is never changed.
//
// A task found without a record is classified from its asynq TaskInfo:
// LastErr "asynq: task lease expired" on the last attempt is
// [CodeLeaseExpired]; a last error of the worker's "unsupported schema"
// retries once MaxRetry ran out is [CodeUnsupportedSchema]; any other
// failure once MaxRetry ran out is [CodeRetryLimit]; anything else (the
// task had retries left, or never failed) was archived by an operator,
// [CodeArchived].
//
// A purge or a requeue may remove a record and its archived task between
// the sweep's reading of the archive and its writing of the record. So after
// writing one, the sweep checks that the task is still archived, and if it
// is not, it deletes the record it wrote (only as it wrote it: a record the
// handler merged into it meanwhile stays). Rows are ended only after that
// check.
func (s *Sweeper) Sweep(ctx context.Context) (written int, err error) {
	if _, err := s.Store.Migrate(ctx); err != nil {
		return 0, err
	}
	for _, q := range s.Queues {
		n, err := s.sweepQueue(ctx, q)
		written += n
		if err != nil {
			return written, fmt.Errorf("deadletter: sweep queue %s: %w", q, err)
		}
	}
	// After the archives, so that a queue whose node is slow delays no
	// record of a dead job.
	return written, errors.Join(s.settleAdoptions(ctx), s.dropRanAgain(ctx))
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
		n, err := s.sweepPage(ctx, infos)
		written += n
		if err != nil {
			return written, err
		}
		if len(infos) < pageSize {
			return written, nil
		}
	}
}

// found is what the sweep knows of one archived task.
type found struct {
	info    *asynq.TaskInfo
	rec     Record // the stored record, or the one written
	raw     []byte // the stored record as read
	has     bool   // a record exists
	indexed bool
	fields  jobFields
	ended   *JobEnd // the job ended otherwise than dead (see EndedBeforeArchive)
}

func (s *Sweeper) sweepPage(ctx context.Context, infos []*asynq.TaskInfo) (int, error) {
	if len(infos) == 0 {
		return 0, nil
	}
	fs, err := s.lookup(ctx, infos)
	if err != nil {
		return 0, err
	}
	written := 0
	for i := range fs {
		f := &fs[i]
		if end, ok := EndedBeforeArchive(f.info); ok {
			// No dead letter: its record, if it has one of this job, goes
			// (as read), and its row ends as the job did (endRows).
			f.ended = &end
			if f.has && f.rec.of(end.Version, f.info.Payload) {
				if _, err := s.Store.deleteIfUnchanged(ctx, f.info.ID, f.raw); err != nil {
					return written, err
				}
			}
			continue
		}
		switch {
		case !f.has:
			ok, err := s.adopt(ctx, f)
			if err != nil {
				return written, err
			}
			if !ok {
				continue // the task left the archive: nothing to account for
			}
			written++
		case !f.indexed:
			if _, err := s.Store.reindex(ctx, f.rec); err != nil {
				return written, err
			}
		}
	}
	return written, s.endRows(ctx, fs)
}

// lookup reads, in one pipeline, the record and index entry of each task.
func (s *Sweeper) lookup(ctx context.Context, infos []*asynq.TaskInfo) ([]found, error) {
	gets := make([]*redis.StringCmd, len(infos))
	scores := make([]*redis.FloatCmd, len(infos))
	_, err := s.Store.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, info := range infos {
			gets[i] = p.Get(ctx, s.Store.RecordKey(info.ID))
			scores[i] = p.ZScore(ctx, s.Store.IndexKey(), info.ID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]found, len(infos))
	for i, info := range infos {
		f := found{info: info, fields: decodeFields(info.Payload)}
		b, err := gets[i].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, err
		default:
			f.has, f.raw = true, b
			if json.Unmarshal(b, &f.rec) != nil {
				f.rec = Record{TaskID: info.ID}
			}
			f.rec.TaskID = info.ID
			_, err := scores[i].Result()
			f.indexed = err == nil
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
		}
		out[i] = f
	}
	return out, nil
}

// adopt writes the missing record of an archived task: the task's record
// of the earlier layout if it has one, else one classified from the task.
// It then checks that the task is still archived; if not (a purge or a
// requeue took it away meanwhile), it takes the record back and reports
// false.
//
// A record the sweep writes is listed, in the same script, among the
// adoptions (Store.AdoptKey) until that check settles it: should the check
// or the taking back fail, or the write's reply be lost, or the worker
// stop, the next sweep of any worker settles it (settleAdoptions), so no
// record the sweep wrote outlives its task's death.
func (s *Sweeper) adopt(ctx context.Context, f *found) (bool, error) {
	if ok, err := s.Store.migrateOne(ctx, f.info.ID); err != nil {
		return false, err
	} else if ok {
		r, has, err := s.Store.Get(ctx, f.info.ID)
		if err != nil || !has {
			return false, err
		}
		f.rec, f.has, f.indexed = r, true, true
		return s.stillArchived(ctx, f, "")
	}
	r := s.record(f.info)
	entry, err := s.Store.putAdopted(ctx, r, f.info.Queue)
	if err != nil {
		return false, err
	}
	if entry == "" {
		// Written meanwhile (the handler, another sweep): use that one.
		got, has, err := s.Store.Get(ctx, f.info.ID)
		if err != nil || !has {
			return false, err
		}
		r = got
	}
	f.rec, f.has, f.indexed = r, true, true
	ok, err := s.stillArchived(ctx, f, entry)
	return ok && entry != "", err
}

// stillArchived reports whether f's task is still in the archive. entry is
// the adoption of the record the sweep wrote ("" when it wrote none, or
// moved one from the earlier layout, which stays): the record stays if the
// task is archived, and goes, if unchanged, if it is not. When the check
// fails the adoption waits for the next sweep.
func (s *Sweeper) stillArchived(ctx context.Context, f *found, entry string) (bool, error) {
	info, err := s.Inspector.GetTaskInfo(f.info.Queue, f.info.ID)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
	case err != nil:
		return false, fmt.Errorf("look up task %s: %w", f.info.ID, err)
	case info.State == asynq.TaskStateArchived:
		if entry != "" {
			// Should this fail, the next sweep finds the task archived.
			_ = s.Store.settleAdopted(ctx, f.info.ID, entry, false)
		}
		return true, nil
	}
	f.has = false
	if entry != "" {
		if err := s.Store.settleAdopted(ctx, f.info.ID, entry, true); err != nil {
			return false, err
		}
	}
	return false, nil
}

// settleAdoptions settles the adoptions earlier sweeps left (see adopt): a
// record whose task is archived stays; one whose task left the archive
// (or is gone) goes if unchanged. One that cannot be looked up waits.
func (s *Sweeper) settleAdoptions(ctx context.Context) error {
	entries, err := s.Store.adoptions(ctx)
	if err != nil {
		return err
	}
	var first error
	for id, entry := range entries {
		info, err := s.Inspector.GetTaskInfo(adoptedQueue(entry), id)
		archived := false
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		case err != nil:
			first = cmp.Or(first, fmt.Errorf("deadletter: look up task %s: %w", id, err))
			continue
		default:
			archived = info.State == asynq.TaskStateArchived
		}
		if err := s.Store.settleAdopted(ctx, id, entry, !archived); err != nil {
			first = cmp.Or(first, err)
		}
	}
	return first
}

// dropRanAgain checks a page of records a sweep, walking round the index
// with the other workers, against their tasks, and deletes, if unchanged,
// the record of a job that ran again and completed (see ranAgain): a task
// completes only when its job ends otherwise than dead, so the record no
// longer stands. Its job could not tell: the task was run from the web
// UI's archive (which leaves asynq's retry count as it was), or the job
// could not delete the record on asynq's last try. A task that is gone
// (its retention ended, or asynq trimmed the archive) cannot be told from
// a dead one, and its record stays.
func (s *Sweeper) dropRanAgain(ctx context.Context) error {
	ids, err := checkPageScript.Run(ctx, s.Store.Redis, []string{s.Store.IndexKey(), s.Store.CheckKey()},
		checkPageMin, checkPageMax, checkRounds).StringSlice()
	if err != nil {
		return fmt.Errorf("deadletter: read index: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	gets := make([]*redis.StringCmd, len(ids))
	_, err = s.Store.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.Get(ctx, s.Store.RecordKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("deadletter: read records: %w", err)
	}
	var first error
	for i, id := range ids {
		b, err := gets[i].Bytes()
		var r Record
		if err != nil || json.Unmarshal(b, &r) != nil || r.Queue == "" {
			continue
		}
		info, err := s.Inspector.GetTaskInfo(r.Queue, id)
		if err != nil || !ranAgain(r, info) {
			continue
		}
		if _, err := s.Store.deleteIfUnchanged(ctx, id, b); err != nil {
			first = cmp.Or(first, err)
		}
	}
	return first
}

// checkPageScript: KEYS index, cursor; ARGV least, most, rounds. It moves
// the cursor a page on (back to the start past the end) and returns the
// page's task ids.
var checkPageScript = redis.NewScript(`
local n = redis.call("ZCARD", KEYS[1])
local page = math.max(tonumber(ARGV[1]), math.min(tonumber(ARGV[2]), math.floor(n / tonumber(ARGV[3]))))
local start = redis.call("INCRBY", KEYS[2], page) - page
if start >= n then
	redis.call("SET", KEYS[2], page)
	start = 0
end
return redis.call("ZRANGE", KEYS[1], start, start + page - 1)`)

// ranAgain reports whether info, the task with r's id, shows that r's job
// ran again and completed: asynq holds it completed, and the version its
// result reports is r's (for a record without a version, its payload is
// r's). A later job given the same task id (an idempotency key or a CLI
// batch line used again once asynq forgot the dead task) does not count.
func ranAgain(r Record, info *asynq.TaskInfo) bool {
	if info == nil {
		return false
	}
	if end, ok := EndedBeforeArchive(info); ok {
		return r.of(end.Version, info.Payload)
	}
	if info.State != asynq.TaskStateCompleted {
		return false
	}
	var res JobEnd
	_ = json.Unmarshal(info.Result, &res)
	return r.of(res.Version, info.Payload)
}

// JobEnd is what the worker stores as a task's result when its job ends
// (see worker.Result).
type JobEnd struct {
	Outcome   string    `json:"outcome"` // a batch outcome: applied, superseded, cancelled, or dead
	Code      string    `json:"code"`
	RequestID string    `json:"RequestId"`
	Version   int64     `json:"version"`
	Attempts  int       `json:"attempts"`
	Note      string    `json:"note"`
	At        time.Time `json:"at"`
}

// EndedBeforeArchive reports whether info, an archived task, carries a job
// that ended otherwise than dead, after its last failure: its result says
// applied, superseded or cancelled, and was written after the task last
// failed (or it never failed). That is a task archived after its job
// ended: in the web UI, an operator archived a task shown waiting that
// completed before the click (asynq's ArchiveTask archives a completed
// task too). Such a task is no dead letter. It must have completed once
// (CompletedAt). A result no later than the last failure (same second
// included: asynq keeps the failure's time in seconds) does not count,
// and a job the handler dead-lettered since has its result overwritten
// with a dead one, whatever the clocks of the machines say.
func EndedBeforeArchive(info *asynq.TaskInfo) (JobEnd, bool) {
	// CompletedAt: asynq completed the task once (only its MarkAsComplete
	// sets it, and ArchiveTask keeps it); a result of a run that asked
	// for a retry (its report failed) is not enough.
	if info == nil || info.State != asynq.TaskStateArchived || len(info.Result) == 0 || info.CompletedAt.IsZero() {
		return JobEnd{}, false
	}
	var end JobEnd
	if json.Unmarshal(info.Result, &end) != nil {
		return JobEnd{}, false
	}
	switch end.Outcome {
	case batch.OutcomeApplied, batch.OutcomeSuperseded, batch.OutcomeCancelled:
	default:
		return JobEnd{}, false
	}
	if !info.LastFailedAt.IsZero() && (end.At.IsZero() || end.At.Unix() <= info.LastFailedAt.Unix()) {
		return JobEnd{}, false
	}
	return end, true
}

// endRows ends dead the open batch rows of the archived tasks of fs that
// have a record, with the record's code.
func (s *Sweeper) endRows(ctx context.Context, fs []found) error {
	if s.Batches == nil {
		return nil
	}
	var refs []batch.RowRef
	var which []*found
	for i := range fs {
		f := &fs[i]
		if (f.has || f.ended != nil) && batch.ValidID(f.fields.Batch) && f.fields.Line > 0 {
			refs = append(refs, batch.RowRef{Batch: f.fields.Batch, Line: f.fields.Line})
			which = append(which, f)
		}
	}
	open, err := s.Batches.Open(ctx, refs)
	if err != nil {
		return err
	}
	for i, f := range which {
		if !open[i] {
			continue
		}
		if e := f.ended; e != nil {
			// The job ended: its row says how, unless the task ran again
			// since the page was read (and may have died). A task gone
			// since (trimmed, deleted) is never seen again: its row ends
			// as read.
			info, err := s.Inspector.GetTaskInfo(f.info.Queue, f.info.ID)
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			case err != nil:
				continue // the next sweep looks again
			default:
				if _, ok := EndedBeforeArchive(info); !ok {
					continue
				}
			}
			_, err = s.Batches.MarkOpen(ctx, f.fields.Batch, f.fields.Line, batch.RowState{
				Outcome: e.Outcome, Code: e.Code, Message: mask.Text(e.Note), RequestID: e.RequestID})
			if err != nil {
				return err
			}
			continue
		}
		// The row is open: make sure the task did not leave the archive
		// (requeued) since the page was read. A requeued job that already
		// reported a state keeps it; one that reports later overwrites
		// this mark.
		if ok, err := s.stillArchived(ctx, f, ""); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		msg := f.rec.Message
		if f.rec.Reason != "" {
			msg = strings.TrimSuffix(f.rec.Reason+": "+msg, ": ")
		}
		_, err := s.Batches.MarkOpen(ctx, f.fields.Batch, f.fields.Line, batch.RowState{
			Outcome: batch.OutcomeDead, Code: orArchived(f.rec.Code), Message: mask.Text(msg), RequestID: f.rec.RequestID})
		if err != nil {
			return err
		}
	}
	return nil
}

func orArchived(code string) string {
	if code == "" {
		return CodeArchived
	}
	return code
}

// leaseExpired is the LastErr asynq gives a task whose lease expired.
const leaseExpired = "asynq: task lease expired"

// RetryUnsupportedSchema starts the error of the worker's retries of a
// payload of a newer schema, by which the sweep knows them.
const RetryUnsupportedSchema = "unsupported schema"

// Death is the error a handler returns for a job it dead-lettered: asynq
// archives the task at once, and should the record be missing, the sweep
// reads the reason and the code back from the archived task's last error.
// detail is the failure, which starts with its code (after an optional
// "dypls: " and action, as the API client writes its errors).
func Death(reason string, detail error) error {
	return fmt.Errorf("%s%s): %w: %w", deathPrefix, reason, detail, asynq.SkipRetry)
}

const deathPrefix = "dead ("

// parseDeath reads the reason and code of an error made by [Death].
func parseDeath(lastErr string) (code, reason string, ok bool) {
	rest, found := strings.CutPrefix(lastErr, deathPrefix)
	if !found {
		return "", "", false
	}
	reason, rest, found = strings.Cut(rest, "): ")
	if !found {
		return "", "", false
	}
	rest = strings.TrimPrefix(rest, "dypls: ")
	parts := strings.SplitN(rest, ": ", 3)
	code = parts[0]
	if len(parts) > 1 && !strings.Contains(code, ".") {
		code = parts[1] // the action came first
	}
	if i := strings.IndexAny(code, " ("); i >= 0 {
		code = code[:i]
	}
	return code, reason, code != ""
}

// classify tells how a task reached the archive outside the handler.
func classify(info *asynq.TaskInfo) (code, reason string) {
	if code, reason, ok := parseDeath(info.LastErr); ok {
		return code, reason
	}
	exhausted := info.Retried >= info.MaxRetry
	switch {
	case !exhausted || info.LastErr == "":
		// asynq archives by itself only once MaxRetry ran out, and only
		// after a failure.
		return CodeArchived, ReasonOperator
	case strings.Contains(info.LastErr, leaseExpired):
		return CodeLeaseExpired, ReasonLeaseExpired
	case strings.HasPrefix(info.LastErr, RetryUnsupportedSchema):
		return CodeUnsupportedSchema, ReasonUnsupportedSchema
	default:
		return CodeRetryLimit, ReasonRetryLimit
	}
}

// record builds the record of an archived task found without one.
func (s *Sweeper) record(info *asynq.TaskInfo) Record {
	code, reason := classify(info)
	r := Record{
		TaskID:      info.ID,
		Queue:       info.Queue,
		Type:        info.Type,
		Code:        code,
		Reason:      reason,
		Message:     mask.Text(info.LastErr),
		Attempts:    info.Retried,
		LastFailure: info.LastFailedAt,
		DiedAt:      info.LastFailedAt,
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
