package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/tasks"
)

// Outcomes and the states on the way, as logs, results and metrics name them.
const (
	OutcomeApplied    = "applied"
	OutcomeSuperseded = "superseded"
	OutcomeDead       = "dead"
	StateThrottled    = "throttled"
	StateTransient    = "transient"
	StateHalted       = "halted"
)

// Codes dyplsq gives to outcomes that have no API code.
const (
	CodeMalformed   = "Job.Malformed"
	CodeMaxAge      = "Job.MaxAgePassed"
	CodeUnknownType = "Job.UnknownType"
	CodeSuperseded  = "Superseded"
	StateBusy       = "busy"
)

// Result is what a completed job stores as its asynq result, shown in the
// UI and read by the CLI.
type Result struct {
	Outcome   string    `json:"outcome"`
	Code      string    `json:"code"`
	RequestID string    `json:"RequestId,omitempty"`
	Version   int64     `json:"version,omitempty"`
	Attempts  int       `json:"attempts"`
	Note      string    `json:"note,omitempty"`
	At        time.Time `json:"at"`
}

// handler runs one job to its next state.
type handler struct {
	cfg     Config
	fence   *fence   // nil only when the fence is switched off for tests
	limit   *limiter // nil when DYPLS_QPS is 0
	marker  func(ctx context.Context, batch string, line int, outcome, code, msg, requestID string) error
	api     *dypls.Client
	state   *stateStore
	dead    *deadletter.Store
	halt    *haltState
	metrics *Metrics
	log     zerolog.Logger
	stop    chan struct{}
	now     func() time.Time
}

// job is the context of one attempt, for logs and records.
type job struct {
	id, queue string
	t         *asynq.Task
	u         tasks.Update
	payload   []byte
	version   int64
	st        *jobState
	stateGone bool // the fence's commit already removed the job state
	start     time.Time
	attempt   int
}

// ProcessTask implements asynq.Handler.
func (h *handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	j := &job{t: t, payload: t.Payload(), start: h.now()}
	j.id, _ = asynq.GetTaskID(ctx)
	j.queue, _ = asynq.GetQueueName(ctx)
	if t.Type() != tasks.TypeUpdateSubscription {
		return h.die(ctx, j, "malformed payload", &dypls.Error{Code: CodeUnknownType,
			Message: fmt.Sprintf("task type %q is not %q: this worker only runs binding updates", t.Type(), tasks.TypeUpdateSubscription),
			Class:   dypls.Permanent})
	}
	u, err := tasks.Decode(t.Payload())
	if errors.Is(err, tasks.ErrUnsupportedSchema) {
		// Written by a newer producer: an upgraded worker will run it.
		h.log.Warn().Str("task_id", j.id).Msg("payload schema is newer than this worker; leaving it for an upgraded worker")
		return &retryError{reason: "unsupported schema", failure: true, delay: jitter(time.Minute), err: err}
	}
	if err != nil {
		return h.die(ctx, j, "malformed payload", &dypls.Error{Code: CodeMalformed, Message: dypls.Mask(err.Error()), Class: dypls.Permanent})
	}
	j.u = u
	var requeues int
	if u.Meta != nil {
		j.version = u.Meta.Version
		requeues = u.Meta.Requeues
	}
	// The first pick-up time matters only to a job that does not say when
	// it was enqueued (plain asynq): only then is it stored at once.
	needFirstSeen := u.Meta == nil || u.Meta.EnqueuedAt.IsZero()
	st, err := h.state.load(ctx, u.SubsId, j.id, requeues, j.start, needFirstSeen)
	if err != nil {
		return h.redisRetry(j, err)
	}
	j.st = st
	j.attempt = st.Attempts + 1

	if h.expired(j) {
		code, msg := st.LastCode, st.LastMessage
		if code == "" {
			code, msg = CodeMaxAge, fmt.Sprintf("the job is older than JOB_MAX_AGE (%s)", h.cfg.MaxAge)
		}
		return h.die(ctx, j, "max age passed", &dypls.Error{Code: code, Message: msg, RequestID: st.LastRequest, Class: dypls.Classify(code)})
	}

	if j.version == 0 {
		// Enqueued by plain asynq without a version: take one now.
		v, err := h.state.ensureVersion(ctx, st, tasks.VersionKey(h.cfg.KeyPrefix))
		if err != nil {
			return h.redisRetry(j, err)
		}
		j.version = v
	}

	ok, probe, retryIn := h.halt.admit(ctx, h.stop, h.cfg.HaltWait)
	if !ok {
		h.metrics.Jobs.WithLabelValues(StateHalted, h.halt.info().Code).Inc()
		return &retryError{reason: StateHalted, delay: retryIn}
	}
	// From here on, every return that made no call gives the probe back.
	giveBack := func() {
		if probe {
			h.halt.release()
		}
	}

	token := lockToken(j.id)
	locked := false
	if h.fence != nil {
		verdict, applied, err := h.fenceBegin(ctx, st, u, j.version, token)
		if err != nil {
			giveBack()
			return h.redisRetry(j, err)
		}
		switch verdict {
		case fenceSuperseded:
			giveBack()
			return h.superseded(ctx, j, applied)
		case fenceDone:
			giveBack()
			return h.applied(ctx, j, st.LastRequest, "this version had already been applied")
		case fenceBusy:
			giveBack()
			h.metrics.Jobs.WithLabelValues(StateBusy, "").Inc()
			return &retryError{reason: StateBusy, delay: jitter(h.cfg.BusyDelay)}
		}
		locked = true
	}
	unlock := func() {
		if locked {
			if err := h.fence.release(context.WithoutCancel(ctx), st, u.SubsId, token); err != nil {
				h.log.Warn().Err(err).Str("task_id", j.id).Msg("binding lock not released; it expires by itself")
			}
			locked = false
		}
	}

	if h.limit != nil {
		ok, wait, err := h.limit.wait(ctx, h.cfg.LimitWait, h.stop)
		if err != nil || !ok {
			unlock()
			giveBack()
			if err != nil {
				return h.redisRetry(j, err)
			}
			return &retryError{reason: "rate limited", delay: wait + jitter(50*time.Millisecond)}
		}
	}

	if !locked {
		// Without the fence, the attempt marker is written on its own;
		// with it, the fence's begin wrote it.
		if err := h.state.begin(ctx, st, h.now()); err != nil {
			giveBack()
			return h.redisRetry(j, err)
		}
	}
	res, callErr := h.api.UpdateSubscription(ctx, dypls.UpdateOf(u))
	h.observe("UpdateSubscription", res, callErr)

	var de *dypls.Error
	if callErr != nil && !errors.As(callErr, &de) {
		de = &dypls.Error{Code: dypls.CodeTransport, Message: dypls.Mask(callErr.Error()), Class: dypls.Transient, Ambiguous: true}
	}
	if probe {
		if de != nil && de.Class == dypls.Systemic {
			// handled below by trip
		} else if h.halt.resolve(de == nil || !isTransport(de)) {
			h.log.Info().Str("code", "OK").Msg("halt ended: a probe call succeeded, resuming calls")
		}
	}
	if de == nil {
		h.commit(ctx, j, token, locked)
		return h.applied(ctx, j, res.RequestID, "")
	}
	if de.Class == dypls.Permanent && de.Code == "isv.BIND_CONFLICT" && st.Ambiguous &&
		(u.OperateType == "updateNoA" || u.OperateType == "updateNoB") {
		if held, rid := h.alreadyHolds(ctx, u); held {
			h.commit(ctx, j, token, locked)
			return h.applied(ctx, j, rid, "an earlier ambiguous attempt had applied it: QuerySubscriptionDetail shows the wanted number")
		}
	}
	// Releasing the fence's lock also clears the attempt marker.
	markerCleared := locked
	unlock()
	if de.Class == dypls.Throttled && h.limit != nil {
		if err := h.limit.throttled(ctx); err != nil {
			h.log.Warn().Err(err).Msg("shared rate not lowered")
		}
	}
	switch de.Class {
	case dypls.Throttled:
		// Not counted, but remembered: if the job runs out of age, its
		// dead letter says it was throttled.
		_ = h.state.end(ctx, st, h.now(), false, false, de.Code, de.Message, de.RequestID)
		h.metrics.Throttled.Inc()
		h.metrics.Jobs.WithLabelValues(StateThrottled, de.Code).Inc()
		h.logJob(zerolog.DebugLevel, j, StateThrottled, de)
		h.mark(ctx, j, "retrying", de.Code, de.Message, de.RequestID)
		return &retryError{reason: StateThrottled, delay: jitter(h.cfg.ThrottleDelay), err: de}
	case dypls.Systemic:
		if !markerCleared {
			_ = h.state.clearInflight(ctx, st)
		}
		h.halt.trip(de.Code, de.Message, probe)
		h.metrics.Jobs.WithLabelValues(StateHalted, de.Code).Inc()
		h.logJob(zerolog.ErrorLevel, j, StateHalted, de)
		h.mark(ctx, j, StateHalted, de.Code, de.Message, de.RequestID)
		info := h.halt.info()
		return &retryError{reason: StateHalted, delay: max(info.NextProbe.Sub(h.now()), 0) + jitter(time.Second), err: de}
	case dypls.Permanent:
		// die drops the job's state, marker included.
		return h.die(ctx, j, "permanent", de)
	}
	// Transient: counted.
	if err := h.state.end(ctx, st, h.now(), true, de.Ambiguous, de.Code, de.Message, de.RequestID); err != nil {
		return h.redisRetry(j, err)
	}
	if st.Attempts >= h.cfg.MaxAttempts {
		return h.die(ctx, j, "attempts exhausted", de)
	}
	h.metrics.Jobs.WithLabelValues(StateTransient, de.Code).Inc()
	h.logJob(zerolog.InfoLevel, j, StateTransient, de)
	h.mark(ctx, j, "retrying", de.Code, de.Message, de.RequestID)
	return &retryError{reason: StateTransient, failure: true, err: de,
		delay: fullJitter(st.Attempts, h.cfg.BackoffBase, h.cfg.BackoffMax)}
}

// fenceBegin runs the fence's begin, waiting a moment (BusyWait) when
// another job holds the binding.
func (h *handler) fenceBegin(ctx context.Context, st *jobState, u tasks.Update, version int64, token string) (fenceVerdict, int64, error) {
	deadline := h.now().Add(h.cfg.BusyWait)
	for {
		verdict, applied, err := h.fence.begin(ctx, st, u.SubsId, u.OperateType, version, token, h.now(), h.state.ttl)
		if err != nil || verdict != fenceBusy || !h.now().Before(deadline) {
			return verdict, applied, err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return verdict, applied, nil
		case <-h.stop:
			return verdict, applied, nil
		}
	}
}

// commit records an applied version in the fence and releases the
// binding. It insists: a version applied but not recorded would let an
// older job overwrite it.
func (h *handler) commit(ctx context.Context, j *job, token string, locked bool) {
	if h.fence == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var err error
	for i := 0; i < 5; i++ {
		if err = h.fence.commit(ctx, j.st, j.u.SubsId, j.u.OperateType, j.version, token); err == nil {
			j.stateGone = true
			return
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
	h.log.Error().Err(err).Str("task_id", j.id).Str("SubsId", j.u.SubsId).Int64("version", j.version).
		Msg("applied version not recorded in the fence")
}

// superseded completes a job that lost to a newer version of its field,
// without an API call.
func (h *handler) superseded(ctx context.Context, j *job, newer int64) error {
	note := fmt.Sprintf("version %d of %s %s was already applied; this job (version %d) would overwrite it", newer, j.u.SubsId, j.u.OperateType, j.version)
	res := Result{Outcome: OutcomeSuperseded, Code: CodeSuperseded, Version: j.version, Attempts: j.attempt - 1, Note: note, At: h.now().UTC()}
	h.writeResult(j.t, res)
	if j.st != nil {
		_ = h.state.drop(ctx, j.st)
	}
	h.metrics.Superseded.Inc()
	h.metrics.Jobs.WithLabelValues(OutcomeSuperseded, CodeSuperseded).Inc()
	h.logJob(zerolog.InfoLevel, j, OutcomeSuperseded, &dypls.Error{Code: CodeSuperseded, Message: note})
	h.mark(ctx, j, OutcomeSuperseded, CodeSuperseded, note, "")
	return nil
}

// expired reports whether the job is older than its max age, counted from
// its enqueue (or requeue) time, or from its first pick-up when unknown.
func (h *handler) expired(j *job) bool {
	born := j.st.FirstSeen
	if m := j.u.Meta; m != nil {
		switch {
		case !m.RequeuedAt.IsZero():
			born = m.RequeuedAt
		case !m.EnqueuedAt.IsZero():
			born = m.EnqueuedAt
		}
	}
	return h.now().Sub(born) > h.cfg.MaxAge
}

// alreadyHolds checks with QuerySubscriptionDetail whether the binding
// already holds the number an ambiguous earlier attempt tried to set.
func (h *handler) alreadyHolds(ctx context.Context, u tasks.Update) (bool, string) {
	d, res, err := h.api.QuerySubscriptionDetail(ctx, dypls.Binding{PoolKey: u.PoolKey, ProductType: u.ProductType, SubsId: u.SubsId, PhoneNoX: u.PhoneNoX})
	h.observe("QuerySubscriptionDetail", res, err)
	if err != nil {
		return false, ""
	}
	switch u.OperateType {
	case "updateNoA":
		return d.PhoneNoA == u.PhoneNoA, res.RequestID
	case "updateNoB":
		return d.PhoneNoB == u.PhoneNoB, res.RequestID
	}
	return false, ""
}

func (h *handler) applied(ctx context.Context, j *job, requestID, note string) error {
	res := Result{Outcome: OutcomeApplied, Code: dypls.CodeOK, RequestID: requestID, Version: j.version,
		Attempts: j.attempt, Note: note, At: h.now().UTC()}
	h.writeResult(j.t, res)
	if j.st != nil && !j.stateGone {
		_ = h.state.drop(ctx, j.st)
	}
	h.metrics.Jobs.WithLabelValues(OutcomeApplied, dypls.CodeOK).Inc()
	h.mark(ctx, j, OutcomeApplied, dypls.CodeOK, note, requestID)
	h.logJob(zerolog.InfoLevel, j, OutcomeApplied, &dypls.Error{Code: dypls.CodeOK, RequestID: requestID, Message: note})
	return nil
}

// die writes the durable dead-letter record and sends the job to the
// archive. If the record cannot be written now, the periodic sweep writes
// one from the archived task.
func (h *handler) die(ctx context.Context, j *job, reason string, de *dypls.Error) error {
	now := h.now()
	rec := deadletter.Record{
		TaskID: j.id, Queue: j.queue, Type: tasks.TypeUpdateSubscription,
		Code: de.Code, Message: de.Message, RequestID: de.RequestID, Class: de.Class.String(), Reason: reason,
		Attempts: j.attempt, FirstFailure: now, LastFailure: now, DiedAt: now,
		SubsId: j.u.SubsId, OperateType: j.u.OperateType, Version: j.version,
		Payload: json.RawMessage(validJSON(j.payload)),
	}
	if j.st != nil {
		if !j.st.FirstFailure.IsZero() {
			rec.FirstFailure = j.st.FirstFailure
		}
		if reason == "max age passed" {
			rec.Attempts = j.st.Attempts
		}
	}
	if j.u.Meta != nil {
		rec.Batch, rec.Line = j.u.Meta.Batch, j.u.Meta.Line
	}
	if err := h.dead.Put(ctx, rec); err != nil {
		h.log.Error().Err(err).Str("task_id", j.id).Msg("dead-letter record not written; the sweep will write it from the archive")
	}
	if j.st != nil {
		_ = h.state.drop(ctx, j.st)
	}
	h.metrics.Jobs.WithLabelValues(OutcomeDead, de.Code).Inc()
	h.mark(ctx, j, OutcomeDead, de.Code, de.Message, de.RequestID)
	h.logJob(zerolog.WarnLevel, j, OutcomeDead, de)
	return fmt.Errorf("dead (%s): %s: %w", reason, de.Error(), asynq.SkipRetry)
}

// mark reports the job's state to its CLI batch, if it belongs to one.
func (h *handler) mark(ctx context.Context, j *job, outcome, code, msg, requestID string) {
	if h.marker == nil || j.u.Meta == nil || j.u.Meta.Batch == "" {
		return
	}
	if err := h.marker(context.WithoutCancel(ctx), j.u.Meta.Batch, j.u.Meta.Line, outcome, code, dypls.Mask(msg), requestID); err != nil {
		h.log.Warn().Err(err).Str("task_id", j.id).Str("batch", j.u.Meta.Batch).Msg("batch record not updated")
	}
}

// redisRetry puts the job back when Redis failed under it; not counted.
func (h *handler) redisRetry(j *job, err error) error {
	h.log.Warn().Err(err).Str("task_id", j.id).Msg("Redis error; the job will run again")
	return &retryError{reason: "redis", delay: jitter(2 * time.Second), err: errors.New(dypls.Mask(err.Error()))}
}

func (h *handler) writeResult(t *asynq.Task, r Result) {
	b, _ := json.Marshal(r)
	if w := t.ResultWriter(); w != nil {
		if _, err := w.Write(b); err != nil {
			h.log.Warn().Err(err).Msg("job result not stored")
		}
	}
}

func (h *handler) observe(action string, res dypls.Result, err error) {
	code, class := dypls.CodeOK, "ok"
	var de *dypls.Error
	if errors.As(err, &de) {
		code, class = de.Code, de.Class.String()
	} else if err != nil {
		code, class = dypls.CodeTransport, dypls.Transient.String()
	}
	h.metrics.Calls.WithLabelValues(action, code, class).Inc()
	if res.Duration > 0 {
		h.metrics.Latency.WithLabelValues(action).Observe(res.Duration.Seconds())
	}
}

// logJob writes the one line per job outcome or state.
func (h *handler) logJob(level zerolog.Level, j *job, outcome string, de *dypls.Error) {
	ev := h.log.WithLevel(level)
	if ev == nil {
		return
	}
	ev = ev.Str("task_id", j.id).Str("queue", j.queue).
		Str("SubsId", j.u.SubsId).Str("OperateType", j.u.OperateType).
		Str("PhoneNoX", dypls.MaskNumber(j.u.PhoneNoX)).
		Str("outcome", outcome).Str("code", de.Code).Int("attempt", j.attempt).
		Int64("version", j.version).Dur("duration", h.now().Sub(j.start))
	if j.u.PhoneNoA != "" {
		ev = ev.Str("PhoneNoA", dypls.MaskNumber(j.u.PhoneNoA))
	}
	if j.u.PhoneNoB != "" {
		ev = ev.Str("PhoneNoB", dypls.MaskNumber(j.u.PhoneNoB))
	}
	if de.RequestID != "" {
		ev = ev.Str("RequestId", de.RequestID)
	}
	if de.Message != "" && de.Code != dypls.CodeOK {
		ev = ev.Str("message", dypls.Mask(de.Message))
	} else if de.Message != "" {
		ev = ev.Str("note", de.Message)
	}
	ev.Msg("job " + outcome)
}

func lockToken(taskID string) string {
	return fmt.Sprintf("%s:%x", taskID, rand.Uint64())
}

func isTransport(e *dypls.Error) bool {
	return e.HTTPStatus == 0 && e.RequestID == "" && e.Class == dypls.Transient
}

func validJSON(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}
