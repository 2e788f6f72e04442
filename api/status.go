package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// States of an update, as [UpdateStatus.State] names them.
const (
	StatePending   = batch.OutcomePending  // queued, waiting for a worker
	StateScheduled = "scheduled"           // queued to run later
	StateActive    = "active"              // a worker is running it
	StateRetrying  = batch.OutcomeRetrying // throttled or a transient failure: it runs again
	StateHalted    = batch.OutcomeHalted   // held by a halted worker, which probes and resumes by itself
	StateEnded     = "ended"               // Outcome says how
)

// UpdateStatus is the answer to GET /v1/updates/{taskId}. Phone numbers are
// masked in every field.
type UpdateStatus struct {
	TaskID string `json:"taskId"`
	Queue  string `json:"queue,omitempty"`
	State  string `json:"state"`
	// Outcome is applied, superseded, dead, cancelled or duplicate once
	// State is ended.
	Outcome   string            `json:"outcome,omitempty"`
	Code      string            `json:"code,omitempty"`
	Message   string            `json:"message,omitempty"`
	RequestID string            `json:"requestId,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	Version   int64             `json:"version,omitempty"`
	Attempts  int               `json:"attempts,omitempty"`
	NextRunAt *time.Time        `json:"nextRunAt,omitempty"`
	EndedAt   *time.Time        `json:"endedAt,omitempty"`
	BatchID   string            `json:"batchId,omitempty"`
	Update    map[string]string `json:"update,omitempty"`
}

var taskIDShape = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,160}$`)

// getUpdate is GET /v1/updates/{taskId}.
func (s *Server) getUpdate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("taskId")
	if !taskIDShape.MatchString(id) {
		fail(w, r, http.StatusNotFound, "not_found", "no such task", nil)
		return
	}
	st, err := s.updateStatus(r.Context(), id)
	switch {
	case errors.Is(err, errNoTask):
		fail(w, r, http.StatusNotFound, "not_found", "no such task in the API's queues, dead letters or batches (finished tasks are kept for a day, batch rows for the batch window)", nil)
	case err != nil:
		e := unavailable(err)
		fail(w, r, e.status, e.code, "Redis did not answer: try again", nil)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

var errNoTask = errors.New("no such task")

// updateStatus finds task id in asynq (the batch's queue first, then the
// API's), then in the dead letters, then in its batch's record.
func (s *Server) updateStatus(ctx context.Context, id string) (*UpdateStatus, error) {
	bid, line, inBatch := batch.ParseTaskID(id)
	var row *batch.Row
	queues := []string{s.cfg.LiveQueue, s.cfg.BulkQueue}
	if inBatch {
		bs, err := s.batches.Status(ctx, bid)
		switch {
		case err == nil:
			queues = append([]string{bs.Queue}, queues...)
			rows, err := s.batches.Rows(ctx, bid, line, line)
			if err != nil {
				return nil, err
			}
			if len(rows) == 1 && rows[0].Outcome != "" {
				row = &rows[0]
			}
		case !errors.Is(err, batch.ErrNotFound):
			return nil, err
		}
	}
	// A split queue's task is in one of its shards, or in a shard of an
	// earlier split.
	known, err := s.insp.Queues()
	if err != nil {
		return nil, err
	}
	var all []string
	for _, q := range queues {
		all = append(all, q)
		all = append(all, tasks.Shards(known, q)...)
	}
	seen := map[string]bool{}
	for _, q := range all {
		if seen[q] {
			continue
		}
		seen[q] = true
		ti, err := s.insp.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return s.fromTask(ctx, ti, row)
	}
	rec, ok, err := s.dead.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok {
		return fromDead(id, rec.Queue, rec.Payload, rec.Code, rec.Message, rec.RequestID, rec.Reason, rec.Attempts, rec.DiedAt), nil
	}
	if row != nil {
		st := &UpdateStatus{TaskID: id, State: StateEnded, Outcome: row.Outcome, BatchID: bid}
		if !batch.Ended(row.Outcome) {
			st.State = row.Outcome
			if row.Outcome == batch.OutcomePending {
				st.State = StatePending
			}
			st.Outcome = ""
		}
		st.Code, st.RequestID, st.Message = row.Code, row.RequestID, mask.Text(row.Message)
		return st, nil
	}
	return nil, errNoTask
}

// fromTask reads a task asynq still has.
func (s *Server) fromTask(ctx context.Context, ti *asynq.TaskInfo, row *batch.Row) (*UpdateStatus, error) {
	st := &UpdateStatus{TaskID: ti.ID, Queue: ti.Queue, Attempts: ti.Retried}
	fillPayload(st, ti.Payload)
	_, endedBefore := deadletter.EndedBeforeArchive(ti) // archived after its job ended: as completed
	switch {
	case ti.State == asynq.TaskStateCompleted || endedBefore:
		var res deadletter.JobEnd
		if err := json.Unmarshal(ti.Result, &res); err != nil || res.Outcome == "" || res.Outcome == batch.OutcomeDead {
			// No result of its own: a task completes only when its job
			// ends otherwise than dead, and a dead result was left by an
			// earlier death (the task was run again from the archive).
			res = deadletter.JobEnd{Outcome: batch.OutcomeApplied, Code: "OK"}
		}
		st.State, st.Outcome, st.Code, st.RequestID = StateEnded, res.Outcome, res.Code, res.RequestID
		st.Message, st.Attempts = mask.Text(res.Note), res.Attempts
		if res.Version > 0 {
			st.Version = res.Version
		}
		if !res.At.IsZero() {
			st.EndedAt = &res.At
		}
	case ti.State == asynq.TaskStateArchived:
		rec, ok, err := s.dead.Get(ctx, ti.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			d := fromDead(ti.ID, ti.Queue, rec.Payload, rec.Code, rec.Message, rec.RequestID, rec.Reason, rec.Attempts, rec.DiedAt)
			d.Update = st.Update
			return d, nil
		}
		st.State, st.Outcome, st.Message = StateEnded, batch.OutcomeDead, mask.Text(ti.LastErr)
	case ti.State == asynq.TaskStateRetry:
		st.State, st.Reason = StateRetrying, mask.Text(ti.LastErr)
		if strings.HasPrefix(ti.LastErr, StateHalted) {
			st.State = StateHalted
		}
		st.NextRunAt = &ti.NextProcessAt
	case ti.State == asynq.TaskStateScheduled:
		st.State = StateScheduled
		st.NextRunAt = &ti.NextProcessAt
	case ti.State == asynq.TaskStateActive:
		st.State = StateActive
	default:
		st.State = StatePending
	}
	if row != nil && st.State != StateEnded {
		st.Code, st.RequestID, st.Message = row.Code, row.RequestID, mask.Text(row.Message)
	}
	return st, nil
}

// fromDead reads a dead-letter record.
func fromDead(id, queue string, payload []byte, code, msg, requestID, reason string, attempts int, died time.Time) *UpdateStatus {
	st := &UpdateStatus{TaskID: id, Queue: queue, State: StateEnded, Outcome: batch.OutcomeDead,
		Code: code, Message: mask.Text(msg), RequestID: requestID, Reason: reason, Attempts: attempts}
	if !died.IsZero() {
		st.EndedAt = &died
	}
	fillPayload(st, payload)
	return st
}

// fillPayload copies the update's parameters, masked, its version and its
// batch from a payload.
func fillPayload(st *UpdateStatus, payload []byte) {
	u, err := tasks.Decode(payload)
	if err != nil {
		return
	}
	st.Update = map[string]string{}
	for k, v := range u.Params() {
		st.Update[k] = mask.Text(v)
	}
	if u.Meta != nil {
		if st.Version == 0 {
			st.Version = u.Meta.Version
		}
		st.BatchID = u.Meta.Batch
	}
}

// BatchStatus is the answer to GET /v1/batches/{batchId}.
type BatchStatus struct {
	BatchID  string           `json:"batchId"`
	State    string           `json:"state"`
	Done     bool             `json:"done"`
	Queue    string           `json:"queue"`
	Source   string           `json:"source"`
	Origin   string           `json:"origin"`
	Created  time.Time        `json:"created"`
	Expires  time.Time        `json:"expires"`
	QueuedAt *time.Time       `json:"queuedAt,omitempty"`
	Rows     int              `json:"rows"`
	Counts   map[string]int64 `json:"counts"`
	Codes    []CodeCount      `json:"codes"`
}

// CodeCount is the number of a batch's rows with one outcome and code.
type CodeCount struct {
	Outcome string `json:"outcome"`
	Code    string `json:"code"`
	Count   int64  `json:"count"`
}

// getBatch is GET /v1/batches/{batchId}.
func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("batchId")
	if !batch.ValidID(id) {
		fail(w, r, http.StatusNotFound, "not_found", "no such batch: a batch id is b and 16 letters or digits", nil)
		return
	}
	st, err := s.batches.Status(r.Context(), id)
	switch {
	case errors.Is(err, batch.ErrNotFound):
		fail(w, r, http.StatusNotFound, "not_found", "no such batch (or its window has passed)", nil)
		return
	case err != nil:
		e := unavailable(err)
		fail(w, r, e.status, e.code, "Redis did not answer: try again", nil)
		return
	}
	out := BatchStatus{BatchID: st.ID, State: st.State, Done: st.Done(), Queue: st.Queue, Source: "cli",
		Origin: mask.Text(st.Origin), Created: st.Created, Expires: st.Expires, Rows: st.Rows,
		Counts: map[string]int64{batch.CountQueued: st.Queued}, Codes: []CodeCount{}}
	if strings.HasPrefix(st.Origin, "api:") {
		out.Source = "api"
	}
	if !st.QueuedAt.IsZero() {
		out.QueuedAt = &st.QueuedAt
	}
	for _, o := range batch.Outcomes {
		out.Counts[o] = st.Of(o)
	}
	for _, c := range st.Codes {
		out.Codes = append(out.Codes, CodeCount{Outcome: c.Outcome, Code: c.Code, Count: c.Rows})
	}
	writeJSON(w, http.StatusOK, out)
}

func itoa(n int) string { return strconv.Itoa(n) }
