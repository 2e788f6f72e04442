package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// Outcomes and the states on the way, as logs, results and metrics name them.
// The outcomes a batch row shares are [batch]'s, defined there once.
const (
	OutcomeApplied    = batch.OutcomeApplied
	OutcomeSuperseded = batch.OutcomeSuperseded
	OutcomeDead       = batch.OutcomeDead
	OutcomeCancelled  = batch.OutcomeCancelled
	StateThrottled    = "throttled"
	StateTransient    = "transient"
	// StateHalted is also the reason of a halted job's retry, so its last
	// error starts with it (admin and api read it there).
	StateHalted = batch.OutcomeHalted
)

// MaxPayloadBytes is the largest payload a worker decodes (64 KiB); a
// larger one ends dead with [CodeMalformed] without being read. A binding
// update is well under 4 KiB; only someone else's task on the queue can be
// larger.
const MaxPayloadBytes = 64 << 10

// Codes dyplsq gives to outcomes that have no API code.
const (
	CodeMalformed         = "Job.Malformed"
	CodeMaxAge            = "Job.MaxAgePassed"
	CodeUnknownType       = "Job.UnknownType"
	CodeUnsupportedSchema = deadletter.CodeUnsupportedSchema
	CodeRetryLimit        = deadletter.CodeRetryLimit
	CodeSuperseded        = "Superseded"
	CodeCancelled         = "Batch.Cancelled"
	StateBusy             = "busy"
)

// Reasons a job is dead, as dead-letter records give them.
const (
	reasonMalformed = deadletter.ReasonMalformed
	reasonPermanent = deadletter.ReasonPermanent
	reasonAttempts  = deadletter.ReasonAttempts
	reasonMaxAge    = deadletter.ReasonMaxAge
	reasonSchema    = deadletter.ReasonUnsupportedSchema
	reasonAsynq     = deadletter.ReasonRetryLimit
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
	fence   *fence
	limit   *limiter // nil when DYPLS_QPS is 0
	marker  func(ctx context.Context, batch string, line int, outcome, code, msg, requestID string) error
	batches *batch.Store // nil: no check for cancelled batches
	api     *dypls.Client
	state   *stateStore
	dead    *deadletter.Store
	halt    *haltState
	metrics *Metrics
	log     zerolog.Logger
	stop    chan struct{}
	now     func() time.Time
	// verified is set once a signed call got an answer that is not
	// account-wide: the credentials work.
	verified atomic.Bool
}

// job is the context of one attempt, for logs and records.
type job struct {
	id, queue string
	t         *asynq.Task
	u         tasks.Update
	payload   []byte
	version   int64
	st        *jobState
	start     time.Time
	attempt   int
	lastTry   bool // asynq archives the task whatever this attempt returns
	stateGone bool // the fence's commit dropped the job's state
	// stateLater: the job's state is read by the fence's begin, in its
	// round trip; until then st holds only its key (see prepare).
	stateLater bool
	rerun      bool // asynq ran the task before (a failure or a lease expiry)
	waited     bool // acquire slept (for a halt, the binding or the rate)
}

// versionInState reports whether the job's version lives only in its
// state (a plain-asynq job), which must then outlive the job's end.
func (j *job) versionInState() bool { return j.u.Meta == nil || j.u.Meta.Version == 0 }

// lease is what an attempt holds between acquire and its end: the
// binding's lock and, in a halt, the probe. It is ended exactly once.
type lease struct {
	token string
	probe bool
	ended bool
}

// ProcessTask implements asynq.Handler. A job goes through four phases:
// prepare (decode, state unless the fence's begin reads it, version, age,
// batch), acquire (halt, fence, rate
// limit), call (one UpdateSubscription), settle (a pure decision, see
// settle, then its effects). Whatever a phase returns passes through
// finish, which turns a retry on asynq's last try into a death with its
// true reason, since asynq would archive it without one.
func (h *handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	j := &job{t: t, payload: t.Payload(), start: h.now()}
	j.id, _ = asynq.GetTaskID(ctx)
	j.queue, _ = asynq.GetQueueName(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	j.lastTry = ok && retried >= maxRetry
	j.rerun = retried > 0
	if err := h.prepare(ctx, j); err != nil {
		return h.finish(ctx, j, nil, err)
	}
	l, err := h.acquire(ctx, j)
	if err != nil {
		return h.finish(ctx, j, nil, err)
	}
	// The job may have waited for a halt, the binding or the rate since
	// its batch was last checked: a cancel in between still stops it.
	if cancelled, err := h.cancelledWhileWaiting(ctx, j); err != nil || cancelled {
		if err != nil {
			return h.finish(ctx, j, l, h.redisRetry(j, err))
		}
		return h.finish(ctx, j, l, h.cancelled(ctx, j, l))
	}
	de, res := h.call(ctx, j, l)
	return h.finish(ctx, j, l, h.settle(ctx, j, l, de, res))
}

// ended is returned by a phase that ended the job (applied, superseded:
// asynq completes it).
var errEnded = errors.New("job ended")

// finish turns a phase's result into asynq's answer.
func (h *handler) finish(ctx context.Context, j *job, l *lease, err error) error {
	if l != nil && !l.ended {
		// Every path ends its lease; this is the safety net.
		h.endLease(ctx, j, l, attemptEnd{state: endKeep, clearIntent: !j.ambiguous()})
	}
	var re *retryError
	switch {
	case err == nil, errors.Is(err, errEnded):
		return nil
	case errors.As(err, &re) && j.lastTry:
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		de := re.cause()
		if re.reason == deadletter.RetryUnsupportedSchema {
			return h.die(ctx, j, l, reasonSchema, &dypls.Error{Code: CodeUnsupportedSchema, Class: dypls.Permanent,
				Message: fmt.Sprintf("asynq's retry limit (%d) was reached while no worker could read the payload: %s", maxRetry, de.Message)})
		}
		msg := fmt.Sprintf("asynq's retry limit (MaxRetry %d) was reached before the job ended (last: %s)", maxRetry, re.reason)
		if de.Message != "" {
			msg += ": " + de.Message
		}
		code := de.Code
		if code == "" {
			code = CodeRetryLimit
		}
		de = &dypls.Error{Code: code, Message: msg, RequestID: de.RequestID, Class: de.Class}
		if j.ambiguous() && checkable(j.u.OperateType) {
			// The job cannot run again: read the binding before calling
			// it dead, as when its attempts run out.
			return ended(h.lastCheck(ctx, j, de, reasonAsynq))
		}
		return h.die(ctx, j, l, reasonAsynq, de)
	}
	return err
}

// ended maps the end of a job to asynq's answer: nil for applied and
// superseded.
func ended(err error) error {
	if errors.Is(err, errEnded) {
		return nil
	}
	return err
}

// prepare decodes the job, loads its state, gives it its version and
// checks its age.
func (h *handler) prepare(ctx context.Context, j *job) error {
	if j.t.Type() != tasks.TypeUpdateSubscription {
		return h.die(ctx, j, nil, reasonMalformed, &dypls.Error{Code: CodeUnknownType,
			Message: mask.Text(fmt.Sprintf("task type %q is not %q: this worker only runs binding updates", j.t.Type(), tasks.TypeUpdateSubscription)),
			Class:   dypls.Permanent})
	}
	if n := len(j.payload); n > MaxPayloadBytes {
		return h.die(ctx, j, nil, reasonMalformed, &dypls.Error{Code: CodeMalformed,
			Message: fmt.Sprintf("payload is %d bytes, more than %d: no binding update is that large", n, MaxPayloadBytes),
			Class:   dypls.Permanent})
	}
	u, err := tasks.Decode(j.payload)
	if errors.Is(err, tasks.ErrUnsupportedSchema) {
		// Written by a newer producer: an upgraded worker will run it.
		h.log.Warn().Str("task_id", j.id).Msg("payload schema is newer than this worker; leaving it for an upgraded worker")
		return &retryError{reason: deadletter.RetryUnsupportedSchema, failure: true, delay: jitter(time.Minute),
			err: &dypls.Error{Code: CodeUnsupportedSchema, Message: mask.Text(err.Error()), Class: dypls.Transient}}
	}
	if err != nil {
		return h.die(ctx, j, nil, reasonMalformed, &dypls.Error{Code: CodeMalformed, Message: mask.Text(err.Error()), Class: dypls.Permanent})
	}
	j.u = u
	if u.Meta != nil {
		j.version = u.Meta.Version
	}
	if h.stateWithBegin(j) {
		j.st, j.stateLater = &jobState{key: h.state.key(u.SubsId, j.id)}, true
	} else if err := h.loadState(ctx, j); err != nil {
		return err
	}
	cancelled, err := h.batchCancelled(ctx, j)
	if err != nil {
		return h.redisRetry(j, err)
	}
	if !cancelled && !h.expired(j) {
		return nil
	}
	if j.stateLater {
		// Ending here: the state is needed now (an earlier attempt's
		// outcome may be unknown).
		if err := h.loadState(ctx, j); err != nil {
			return err
		}
	}
	// An earlier run may have applied this version and then failed to
	// report it (a Redis write failed, and asynq ran the task again): its
	// end stands, whatever came since, a cancel or the job's age. asynq's
	// retry count does not tell (a retry after a Redis failure is not
	// counted), so the fence is read on this rare path for every job.
	done, rid, err := h.fence.appliedAt(ctx, j)
	if err != nil {
		return h.redisRetry(j, err)
	}
	if done {
		return h.applied(ctx, j, rid, "this version had already been applied")
	}
	if cancelled {
		return h.cancelled(ctx, j, nil)
	}
	return h.maxAgePassed(ctx, j)
}

// stateWithBegin reports whether the job's state can wait for the fence's
// begin, which then reads it in its own round trip: the common case of a
// job that carries its version and enqueue time (so that neither needs
// the state) and was never requeued (no new attempt budget to start),
// short of asynq's last try (whose every failure needs the state to end
// the job). The others load it first.
func (h *handler) stateWithBegin(j *job) bool {
	m := j.u.Meta
	return !j.lastTry && m != nil && m.Version > 0 && !m.EnqueuedAt.IsZero() && m.Requeues == 0 && m.RequeuedAt.IsZero()
}

// loadState loads the job's state: a requeued job (_meta.requeues above
// the state's generation) starts a fresh attempt budget, and a job without
// a version takes one from the counter once and keeps it in its state.
func (h *handler) loadState(ctx context.Context, j *job) error {
	u := j.u
	gen := 0
	if u.Meta != nil {
		gen = u.Meta.Requeues
	}
	// The first pick-up time matters only to a job that does not say when
	// it was enqueued (plain asynq): only then is it stored at once.
	needFirstSeen := u.Meta == nil || u.Meta.EnqueuedAt.IsZero()
	st, err := h.state.load(ctx, u.SubsId, j.id, gen, j.start, needFirstSeen)
	if err != nil {
		return h.redisRetry(j, err)
	}
	h.useState(j, st)
	if j.version == 0 {
		// Enqueued by plain asynq without a version: take one now, once.
		if j.version, err = h.state.ensureVersion(ctx, st, tasks.VersionKey(h.cfg.KeyPrefix)); err != nil {
			return h.redisRetry(j, err)
		}
	}
	return nil
}

// useState makes st the job's state.
func (h *handler) useState(j *job, st *jobState) {
	if j.u.Meta != nil && j.u.Meta.Ambiguous {
		st.Ambiguous = true // an earlier life of this job, before a requeue, may have applied it
	}
	j.st, j.stateLater = st, false
	j.attempt = st.Attempts + 1
}

// batchCancelled reports whether the job is a row of a CLI batch that was
// cancelled.
func (h *handler) batchCancelled(ctx context.Context, j *job) (bool, error) {
	if h.batches == nil || j.u.Meta == nil || j.u.Meta.Batch == "" {
		return false, nil
	}
	return h.batches.Cancelled(ctx, j.u.Meta.Batch)
}

// cancelledWhileWaiting reads the batch's mark again before the call of a
// row that slept in acquire (for a halt, the binding or the rate), so that
// a cancel issued meanwhile stops it. A row that went straight through (its
// round trips only) is not read again: a cancel issued since finds it
// running, and the cancel command waits for the rows being run
// (RELIABILITY.md, section 5).
func (h *handler) cancelledWhileWaiting(ctx context.Context, j *job) (bool, error) {
	if !j.waited {
		return false, nil
	}
	return h.batchCancelled(ctx, j)
}

// cancelled ends, without a call, a job whose CLI batch was cancelled: its
// row ends cancelled unless it already ended, and the job completes. When
// an earlier attempt's outcome is unknown, the binding is read first (for
// a number it can show): found applied, the job ends applied; otherwise
// the row says it may have been, and the job's intent stays in the fence
// until it expires, so that no older update of the field overwrites it.
func (h *handler) cancelled(ctx context.Context, j *job, l *lease) error {
	note := "its batch was cancelled (enqueue batch cancel): ended without an API call"
	clearIntent := true
	if j.ambiguous() {
		clearIntent = false
		note = "its batch was cancelled (enqueue batch cancel): ended without another API call; an earlier attempt's outcome is unknown, so it may have been applied"
		if checkable(j.u.OperateType) {
			held, rid, qerr, ok := h.readInDoubt(ctx, j)
			if !ok {
				return &retryError{reason: retryStopping, delay: jitter(time.Second)}
			}
			switch {
			case qerr == nil && held:
				return h.commit(ctx, j, l, rid, noteFoundApplied)
			case qerr == nil:
				clearIntent = true
				note = "its batch was cancelled (enqueue batch cancel): ended without another API call; QuerySubscriptionDetail shows that an earlier attempt, whose outcome was unknown, did not apply it"
			default:
				note += fmt.Sprintf(" (QuerySubscriptionDetail failed: %s)", qerr.Code)
			}
		}
	}
	state := endDrop
	if j.versionInState() {
		state = endKeep
	}
	h.endLease(ctx, j, l, attemptEnd{state: state, clearIntent: clearIntent})
	if _, err := h.batches.MarkOpen(context.WithoutCancel(ctx), j.u.Meta.Batch, j.u.Meta.Line,
		batch.RowState{Outcome: batch.OutcomeCancelled, Code: CodeCancelled, Message: note}); err != nil {
		return h.redisRetry(j, err)
	}
	if err := h.dropStaleRecord(ctx, j); err != nil && !j.lastTry {
		return h.redisRetry(j, err)
	}
	b, _ := json.Marshal(Result{Outcome: OutcomeCancelled, Code: CodeCancelled, Version: j.version, Attempts: j.attempt - 1, Note: note, At: h.now().UTC()})
	if w := j.t.ResultWriter(); w != nil {
		_, _ = w.Write(b)
	}
	h.metrics.Jobs.WithLabelValues(OutcomeCancelled, CodeCancelled).Inc()
	h.logJob(zerolog.InfoLevel, j, OutcomeCancelled, &dypls.Error{Code: CodeCancelled, Message: note})
	return errEnded
}

// mayHaveRecord reports whether a dead-letter record may stand for the
// job although it is running: an earlier run dead-lettered it before asynq
// lost the archive (a Redis fault, a crash), or a requeue queued it again
// but could not delete its record.
func (j *job) mayHaveRecord() bool {
	return j.rerun || (j.u.Meta != nil && j.u.Meta.Requeues > 0)
}

// dropStaleRecord deletes the dead-letter record of a job that ended
// otherwise than dead, if it may have one (see mayHaveRecord): that record
// no longer stands. Its error makes the job run again (the fence answers
// the same outcome without a call) so that the record goes then, rather
// than stand until the sweep's walk of the records reaches it (see
// deadletter.Sweeper).
func (h *handler) dropStaleRecord(ctx context.Context, j *job) error {
	if !j.mayHaveRecord() {
		return nil
	}
	// Only its own record: a record of an earlier job given the same task
	// id (an idempotency key used again) stands for that job.
	if _, err := h.dead.DeleteOf(context.WithoutCancel(ctx), j.id, j.version, j.payload); err != nil {
		return fmt.Errorf("stale dead-letter record not removed: %w", err)
	}
	return nil
}

// ambiguous reports whether an earlier attempt of the job may have
// applied its update.
func (j *job) ambiguous() bool { return j.st != nil && j.st.Ambiguous }

// acquire waits out a halt, takes the binding in the fence and a token
// from the shared rate limit. It returns the lease, or the job's end or
// retry.
func (h *handler) acquire(ctx context.Context, j *job) (*lease, error) {
	ok, probe, slept, retryIn := h.halt.admit(ctx, h.stop, h.cfg.HaltWait)
	j.waited = j.waited || slept
	if !ok {
		h.metrics.Retries.WithLabelValues(StateHalted, h.halt.info().Code).Inc()
		return nil, &retryError{reason: StateHalted, delay: retryIn}
	}
	l := &lease{token: lockToken(j.id), probe: probe}
	giveBack := func() {
		if l.probe {
			h.halt.release()
			l.probe = false
		}
	}
	b, err := h.fenceBegin(ctx, j, l.token)
	if err != nil {
		giveBack()
		return nil, h.redisRetry(j, err)
	}
	if j.stateLater {
		st := &jobState{key: j.st.key}
		st.fill(b.state, true, j.start)
		h.useState(j, st)
	}
	switch b.verdict {
	case fenceSuperseded:
		giveBack()
		return nil, h.superseded(ctx, j, b.n)
	case fenceDone:
		giveBack()
		return nil, h.applied(ctx, j, b.requestID, "this version had already been applied")
	case fenceBusy, fenceBlocked:
		giveBack()
		h.metrics.Retries.WithLabelValues(StateBusy, "").Inc()
		reason := StateBusy
		if b.verdict == fenceBlocked {
			reason = fmt.Sprintf("busy: version %d of this field may have been applied; waiting for it to settle", b.n)
		}
		return nil, &retryError{reason: reason, delay: jitter(h.cfg.BusyDelay)}
	}
	if h.limit != nil {
		ok, wait, slept, err := h.limit.wait(ctx, h.cfg.LimitWait, h.stop)
		j.waited = j.waited || slept
		if err != nil || !ok {
			h.endLease(ctx, j, l, attemptEnd{state: endKeep, clearIntent: !j.ambiguous()})
			if err != nil {
				return nil, h.redisRetry(j, err)
			}
			return nil, &retryError{reason: retryRateLimited, delay: wait + jitter(50*time.Millisecond)}
		}
	}
	return l, nil
}

// fenceBegin runs the fence's begin, waiting a moment (BusyWait) when
// another job holds the binding.
func (h *handler) fenceBegin(ctx context.Context, j *job, token string) (beginResult, error) {
	deadline := h.now().Add(h.cfg.BusyWait)
	for {
		b, err := h.fence.begin(ctx, j, token)
		if err != nil || b.verdict != fenceBusy || !h.now().Before(deadline) {
			return b, err
		}
		j.waited = true
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return b, nil
		case <-h.stop:
			return b, nil
		}
	}
}

// call makes the one UpdateSubscription of the attempt. The fence's begin
// has already recorded that an attempt started, so a crash from here on
// leaves the next attempt knowing the outcome is unknown.
func (h *handler) call(ctx context.Context, j *job, l *lease) (*dypls.Error, dypls.Result) {
	res, err := h.api.UpdateSubscription(ctx, UpdateOf(j.u))
	h.observe("UpdateSubscription", res, err)
	de := asAPIError(err)
	if de == nil || de.Class == dypls.Permanent || de.Class == dypls.Throttled {
		// Answers given only to a signed request: the credentials work.
		h.verified.Store(true)
	}
	if l.probe && (de == nil || de.Class != dypls.Systemic) {
		code := dypls.CodeOK
		if de != nil {
			code = de.Code
		}
		if h.halt.resolve(de == nil || !isTransport(de)) {
			h.log.Info().Str("probe", "UpdateSubscription").Str("result", code).Msg("halt ended: a probe call was answered, resuming calls")
		} else {
			h.log.Warn().Str("probe", "UpdateSubscription").Str("result", code).Time("next_probe", h.halt.info().NextProbe).
				Msg("halt probe got no answer; still halted")
		}
		l.probe = false
	}
	return de, res
}

// settle carries out the decision for the attempt's answer.
func (h *handler) settle(ctx context.Context, j *job, l *lease, de *dypls.Error, res dypls.Result) error {
	var failingFor time.Duration
	if !j.st.FirstFailure.IsZero() {
		failingFor = h.now().Sub(j.st.FirstFailure)
	}
	s := settle(attempt{err: de, op: j.u.OperateType, ambiguous: j.ambiguous(),
		attempts: j.st.Attempts, maxAttempts: h.cfg.MaxAttempts,
		retryFor: h.cfg.RetryFor, failingFor: failingFor})
	switch s.act {
	case actApplied:
		return h.commit(ctx, j, l, res.RequestID, "")
	case actCheck:
		if de.Class != dypls.Permanent {
			// The attempts ran out: the attempt counts, whatever the
			// check finds, which is the job's last chance.
			if _, err := h.endAttempt(ctx, j, l, de, s, endRecord); err != nil {
				return h.redisRetry(j, err)
			}
			return h.lastCheck(ctx, j, de, reasonAttempts)
		}
		return h.check(ctx, j, l, de)
	case actRetryNotSent:
		h.endLease(ctx, j, l, attemptEnd{state: endKeep, clearIntent: !j.ambiguous()})
		return &retryError{reason: retryNotSent, delay: jitter(time.Second), err: de}
	case actRetryThrottled:
		if _, err := h.endAttempt(ctx, j, l, de, s, endRecord); err != nil {
			return h.redisRetry(j, err)
		}
		return h.throttled(ctx, j, de)
	case actHalt:
		wasProbe := l.probe
		l.probe = false // consumed: trip doubles its interval
		h.endLease(ctx, j, l, attemptEnd{state: endKeep, clearIntent: !j.ambiguous()})
		return h.halted(ctx, j, de, wasProbe)
	case actDead:
		return h.die(ctx, j, l, reasonPermanent, de)
	case actExhausted:
		if _, err := h.endAttempt(ctx, j, l, de, s, endRecord); err != nil {
			return h.redisRetry(j, err)
		}
		return h.die(ctx, j, l, reasonAttempts, de)
	}
	// Transient: counted.
	n, err := h.endAttempt(ctx, j, l, de, s, endRecord)
	if err != nil {
		return h.redisRetry(j, err)
	}
	h.metrics.Retries.WithLabelValues(StateTransient, de.Code).Inc()
	h.logJob(zerolog.InfoLevel, j, StateTransient, de)
	if err := h.mark(ctx, j, batch.OutcomeRetrying, de.Code, de.Message, de.RequestID); err != nil {
		redisEvent(h.log, err).Err(err).Str("task_id", j.id).Msg("batch record not updated")
	}
	return &retryError{reason: StateTransient, failure: true, err: de,
		delay: fullJitter(n, h.cfg.BackoffBase, h.cfg.BackoffMax)}
}

// endAttempt records the end of an attempt that did not apply for certain
// and ends the lease: a call in doubt keeps the binding locked for
// AmbiguousHold and keeps the job's intent in the fence.
func (h *handler) endAttempt(ctx context.Context, j *job, l *lease, de *dypls.Error, s settlement, state string) (int, error) {
	e := attemptEnd{state: state, counted: s.counted, ambiguous: s.inDoubt,
		code: de.Code, msg: mask.Text(de.Message), requestID: de.RequestID,
		clearIntent: !s.inDoubt && !j.ambiguous()}
	if s.inDoubt {
		j.st.Ambiguous = true
	}
	if s.running {
		e.hold = h.cfg.AmbiguousHold
	}
	n, err := h.endLease(ctx, j, l, e)
	if err == nil {
		j.st.Attempts = n
		j.st.LastFailure = h.now()
		if j.st.FirstFailure.IsZero() {
			j.st.FirstFailure = j.st.LastFailure
		}
	}
	return n, err
}

// endLease ends the attempt's lease in the fence (lock, intent, job state)
// and gives a probe back. Its error matters only to callers that need the
// attempt count; a lease not ended expires by itself.
func (h *handler) endLease(ctx context.Context, j *job, l *lease, e attemptEnd) (int, error) {
	if l != nil {
		if l.probe {
			h.halt.release()
			l.probe = false
		}
		if l.ended {
			e.token = ""
		} else {
			e.token = l.token
			l.ended = true
		}
	}
	n, err := h.fence.end(context.WithoutCancel(ctx), j, e)
	if err != nil {
		redisEvent(h.log, err).Err(err).Str("task_id", j.id).Msg("attempt end not recorded; the binding's lock expires by itself")
	}
	return n, err
}

// commit records an applied version in the fence before the job is
// reported applied: a version applied but not recorded would let an older
// job overwrite it. It insists for a while; if Redis still refuses, the job
// is not reported and runs again, and meanwhile its intent in the fence
// keeps older jobs of the field waiting.
//
// The first try also stores the job's result (applied), in the same round
// trip: if the commit finds a newer version recorded, the job ends
// superseded and that result is written over it; if the result was not
// stored, the report stores it.
func (h *handler) commit(ctx context.Context, j *job, l *lease, requestID, note string) error {
	res := h.appliedResult(j, requestID, note)
	var result []byte
	if w := j.t.ResultWriter(); w != nil && j.queue != "" && ctx.Err() == nil && l != nil && !j.lastTry {
		// asynq's ResultWriter refuses to write once the task's context
		// ended; so does this. Without the lock (a check) the commit may
		// find the job superseded, and on asynq's last try a failed
		// report cannot run again: both store the result afterwards.
		result, _ = json.Marshal(res)
	}
	ctx = context.WithoutCancel(ctx)
	var (
		prev   int64
		err    error
		stored bool
	)
	token := ""
	if l != nil {
		token = l.token
	}
	deadline := time.Now().Add(h.cfg.CommitWait)
	for i := 0; ; i++ {
		var resultErr error
		if prev, resultErr, err = h.fence.commit(ctx, j, token, requestID, result); err == nil {
			stored = result != nil && resultErr == nil
			break
		}
		if result != nil && resultErr == nil {
			// Stored while the commit failed (on Cluster, another node):
			// asynq shows a task's result in any state, so it goes until
			// the job is applied.
			h.fence.dropResult(ctx, j)
		}
		result = nil // a later try's report stores the result, with its time
		if !time.Now().Before(deadline) && !(j.lastTry && !h.stopping()) {
			// On asynq's last try the job cannot run again: insist
			// until the worker stops.
			if l != nil {
				// Left as it is: the lock expires, the intent and the
				// attempt marker stay, so the next run knows.
				l.ended = true
			}
			h.log.Error().Err(err).Str("task_id", j.id).Str("subs_id", j.u.SubsId).Int64("version", j.version).
				Msg("applied version not recorded in the fence; the job runs again")
			return h.redisRetry(j, err)
		}
		time.Sleep(min(time.Duration(i+1)*50*time.Millisecond, 500*time.Millisecond))
	}
	if l != nil {
		l.ended = true
	}
	j.stateGone = !j.versionInState()
	if prev > j.version {
		// Settled by a check without the lock, after a newer version was
		// recorded: the newer one stands.
		return h.superseded(ctx, j, prev)
	}
	return h.reportApplied(ctx, j, res, stored)
}

// check settles a conflict after an unknown outcome with
// QuerySubscriptionDetail: applied when the binding holds the value. A
// query that fails is retried by its class; it never makes the job dead.
func (h *handler) check(ctx context.Context, j *job, l *lease, de *dypls.Error) error {
	held, rid, qerr := h.holds(ctx, j.u)
	switch settleCheck(check{err: qerr, held: held}) {
	case actApplied:
		return h.commit(ctx, j, l, rid, noteFoundApplied)
	case actDead:
		return h.die(ctx, j, l, reasonPermanent, de)
	case actRetryThrottled:
		h.endLease(ctx, j, l, attemptEnd{state: endKeep})
		return h.throttled(ctx, j, qerr)
	case actHalt:
		h.endLease(ctx, j, l, attemptEnd{state: endKeep})
		return h.halted(ctx, j, qerr, false)
	}
	h.endLease(ctx, j, l, attemptEnd{state: endKeep})
	h.logJob(zerolog.InfoLevel, j, StateTransient, qerr)
	return &retryError{reason: retryCheckFailed, err: qerr,
		delay: fullJitter(j.st.Attempts, h.cfg.BackoffBase, h.cfg.BackoffMax)}
}

// lastCheck reads the binding before a job whose outcome is in doubt ends
// dead (reason): applied if the binding holds its value. It first waits out
// AmbiguousHold since the job's last failure, so that a call the provider
// may still be applying is seen.
func (h *handler) lastCheck(ctx context.Context, j *job, de *dypls.Error, reason string) error {
	held, rid, qerr, ok := h.readInDoubt(ctx, j)
	if !ok {
		return &retryError{reason: retryStopping, delay: jitter(time.Second), err: de}
	}
	if qerr == nil && held {
		return h.commit(ctx, j, nil, rid, noteFoundApplied)
	}
	if qerr != nil {
		de = &dypls.Error{Code: de.Code, Message: de.Message + fmt.Sprintf(" (an attempt's outcome is unknown and QuerySubscriptionDetail failed: %s)", qerr.Code),
			RequestID: de.RequestID, Class: de.Class}
	}
	return h.die(ctx, j, nil, reason, de)
}

// noteFoundApplied is the note of a job found applied by reading the
// binding after an attempt of unknown outcome.
const noteFoundApplied = "an earlier attempt whose outcome was unknown had applied it: QuerySubscriptionDetail shows the wanted number"

// readInDoubt reads the binding of a job an earlier attempt of which may
// have applied it: it first waits until that call can no longer be
// applying (AmbiguousHold after the last failure), then reports whether
// the binding holds the job's value. ok is false when the worker stops or
// ctx ends during the wait.
func (h *handler) readInDoubt(ctx context.Context, j *job) (held bool, requestID string, qerr *dypls.Error, ok bool) {
	if !j.st.LastFailure.IsZero() && !h.pause(ctx, h.cfg.AmbiguousHold-h.now().Sub(j.st.LastFailure)) {
		return false, "", nil, false
	}
	held, requestID, qerr = h.holds(ctx, j.u)
	return held, requestID, qerr, true
}

// pause waits d, and reports false if the worker stops or ctx ends first.
func (h *handler) pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-h.stop:
		return false
	}
}

// maxAgePassed ends a job older than JOB_MAX_AGE: dead with its last
// failure, unless an earlier attempt of unknown outcome is found applied.
func (h *handler) maxAgePassed(ctx context.Context, j *job) error {
	st := j.st
	code, msg := st.LastCode, st.LastMessage
	if code == "" {
		code, msg = CodeMaxAge, fmt.Sprintf("the job is older than JOB_MAX_AGE (%s)", h.cfg.MaxAge)
	}
	de := &dypls.Error{Code: code, Message: msg, RequestID: st.LastRequest, Class: dypls.Classify(code)}
	if st.Ambiguous && checkable(j.u.OperateType) {
		return h.lastCheck(ctx, j, de, reasonMaxAge)
	}
	return h.die(ctx, j, nil, reasonMaxAge, de)
}

// throttled retries a throttled job after a short delay, not counted. It
// cuts the fleet's shared rate when throttling is the account's (see
// settleThrottle), and otherwise backs off this binding alone.
func (h *handler) throttled(ctx context.Context, j *job, de *dypls.Error) error {
	t := throttle{code: de.Code, minSpread: h.cfg.ThrottleSpread, base: h.cfg.ThrottleDelay, max: h.cfg.ThrottleBindingMax}
	if t.code == "isv.FLOW_LIMIT" {
		// Only the business flow control may be about one binding: see
		// how widely it is spread, and how often this binding got it.
		t.spread = t.minSpread // without a limiter, or if Redis fails: as the account's
		if h.limit != nil {
			if n, err := h.limit.spread(ctx, j.u.SubsId); err == nil {
				t.spread = n
			} else {
				redisEvent(h.log, err).Err(err).Msg("throttling spread not recorded")
			}
		}
		n, err := h.state.throttledBinding(ctx, j.u.SubsId)
		if err != nil {
			redisEvent(h.log, err).Err(err).Msg("binding throttle count not recorded")
		}
		t.repeats = n
	}
	d := settleThrottle(t)
	if h.limit != nil && d.cutShared {
		if err := h.limit.throttled(ctx); err != nil {
			redisEvent(h.log, err).Err(err).Msg("shared rate not lowered")
		}
	}
	h.metrics.Retries.WithLabelValues(StateThrottled, de.Code).Inc()
	h.logJob(zerolog.DebugLevel, j, StateThrottled, de)
	if err := h.mark(ctx, j, batch.OutcomeRetrying, de.Code, de.Message, de.RequestID); err != nil {
		redisEvent(h.log, err).Err(err).Str("task_id", j.id).Msg("batch record not updated")
	}
	return &retryError{reason: StateThrottled, delay: jitter(d.delay), err: de}
}

func (h *handler) halted(ctx context.Context, j *job, de *dypls.Error, wasProbe bool) error {
	h.halt.trip(de.Code, de.Message, wasProbe)
	if wasProbe {
		h.log.Warn().Str("probe", "UpdateSubscription").Str("result", de.Code).Str("hint", HaltHint(de.Code)).
			Time("next_probe", h.halt.info().NextProbe).Msg("halt probe failed; still halted")
	}
	h.metrics.Retries.WithLabelValues(StateHalted, de.Code).Inc()
	h.logJob(zerolog.ErrorLevel, j, StateHalted, de)
	if err := h.mark(ctx, j, StateHalted, de.Code, de.Message, de.RequestID); err != nil {
		redisEvent(h.log, err).Err(err).Str("task_id", j.id).Msg("batch record not updated")
	}
	info := h.halt.info()
	return &retryError{reason: StateHalted, delay: max(info.NextProbe.Sub(h.now()), 0) + jitter(time.Second), err: de}
}

// superseded completes a job that lost to a newer version of its field,
// without an API call.
func (h *handler) superseded(ctx context.Context, j *job, newer int64) error {
	note := fmt.Sprintf("version %d of %s %s was already applied; this job (version %d) would overwrite it", newer, j.u.SubsId, j.u.OperateType, j.version)
	res := Result{Outcome: OutcomeSuperseded, Code: CodeSuperseded, Version: j.version, Attempts: j.attempt - 1, Note: note, At: h.now().UTC()}
	if err := h.report(ctx, j, res, false); err != nil {
		return err
	}
	h.ended(j, OutcomeSuperseded, CodeSuperseded)
	h.logJob(zerolog.InfoLevel, j, OutcomeSuperseded, &dypls.Error{Code: CodeSuperseded, Message: note})
	return errEnded
}

// applied completes a job whose version was applied (requestID: the call
// that applied it).
func (h *handler) applied(ctx context.Context, j *job, requestID, note string) error {
	return h.reportApplied(ctx, j, h.appliedResult(j, requestID, note), false)
}

// appliedResult is the result of a job that ended applied.
func (h *handler) appliedResult(j *job, requestID, note string) Result {
	return Result{Outcome: OutcomeApplied, Code: dypls.CodeOK, RequestID: requestID, Version: j.version,
		Attempts: j.attempt, Note: note, At: h.now().UTC()}
}

// reportApplied reports res, the end of an applied job; stored says the
// result is already stored (with the fence's commit).
func (h *handler) reportApplied(ctx context.Context, j *job, res Result, stored bool) error {
	if err := h.report(ctx, j, res, stored); err != nil {
		return err
	}
	h.ended(j, OutcomeApplied, dypls.CodeOK)
	h.logJob(zerolog.InfoLevel, j, OutcomeApplied, &dypls.Error{Code: dypls.CodeOK, RequestID: res.RequestID, Message: res.Note})
	return errEnded
}

// report stores the result of a job that ended applied or superseded
// (unless stored: the fence's commit stored it already), marks its batch
// row and forgets its state. If the result or the row cannot be written
// the job runs again: the fence then answers the same outcome without a
// call, and the report is made again. On asynq's last try there is no
// again: the job completes and the failure is logged.
func (h *handler) report(ctx context.Context, j *job, res Result, stored bool) error {
	again := func(err error) error {
		if j.lastTry {
			h.log.Error().Err(err).Str("task_id", j.id).Str("outcome", res.Outcome).Msg("job ended but its report is incomplete")
			return nil
		}
		return h.redisRetry(j, err)
	}
	if w := j.t.ResultWriter(); w != nil && !stored {
		b, _ := json.Marshal(res)
		if _, err := w.Write(b); err != nil {
			if err := again(fmt.Errorf("result not stored: %w", err)); err != nil {
				return err
			}
		}
	}
	if err := h.mark(ctx, j, res.Outcome, res.Code, res.Note, res.RequestID); err != nil {
		if err := again(err); err != nil {
			return err
		}
	}
	if err := h.dropStaleRecord(ctx, j); err != nil {
		if err := again(err); err != nil {
			return err
		}
	}
	if !j.versionInState() && !j.stateGone {
		// A plain-asynq job keeps its state, which holds its version, until
		// it expires: a crash before asynq hears of the end must find it.
		_, _ = h.fence.end(context.WithoutCancel(ctx), j, attemptEnd{state: endDrop})
	}
	return nil
}

// die writes the durable dead-letter record, ends the lease and the batch
// row, and sends the job to the archive. If the record cannot be written
// now, the periodic sweep writes one from the archived task.
func (h *handler) die(ctx context.Context, j *job, l *lease, reason string, de *dypls.Error) error {
	now := h.now()
	rec := deadletter.Record{
		TaskID: j.id, Queue: j.queue, Type: j.t.Type(),
		Code: de.Code, Message: de.Message, RequestID: de.RequestID, Class: de.Class.String(), Reason: reason,
		Attempts: j.attempt, FirstFailure: now, LastFailure: now, DiedAt: now,
		Version: j.version, Ambiguous: j.ambiguous(),
	}
	rec.SetPayload(validJSON(j.payload))
	if j.st != nil {
		if !j.st.FirstFailure.IsZero() {
			rec.FirstFailure = j.st.FirstFailure
		}
		if reason == reasonMaxAge || reason == reasonAttempts {
			rec.Attempts = j.st.Attempts
		}
	}
	if created, err := h.dead.PutNew(context.WithoutCancel(ctx), rec); err != nil {
		h.log.Error().Err(err).Str("task_id", j.id).Msg("dead-letter record not written; the sweep will write it from the archive")
	} else if created {
		h.metrics.DeadCreated.Inc()
	}
	if j.st != nil {
		// The job is over: its intent goes, so an older job may run (a
		// lease still held here follows a definite answer; one that
		// ended after a call that may still be running keeps its hold).
		// Its state goes too, unless it holds the job's version.
		state := endDrop
		if j.versionInState() {
			state = endKeep
		}
		h.endLease(ctx, j, l, attemptEnd{state: state, clearIntent: true})
	}
	if w := j.t.ResultWriter(); w != nil {
		// Over any result an earlier run left (a report that failed, a run
		// that completed and was archived in the web UI, then run again):
		// the sweep must not take the archived task for a job that ended
		// otherwise (deadletter.EndedBeforeArchive). Best effort: that
		// check also compares the result's time with the death's.
		b, _ := json.Marshal(Result{Outcome: OutcomeDead, Code: de.Code, RequestID: de.RequestID, Version: j.version,
			Attempts: rec.Attempts, Note: mask.Text(de.Message), At: now.UTC()})
		_, _ = w.Write(b)
	}
	h.ended(j, OutcomeDead, de.Code)
	if err := h.markRow(ctx, rec.Batch, rec.Line, OutcomeDead, de.Code, de.Message, de.RequestID); err != nil {
		redisEvent(h.log, err).Err(err).Str("task_id", j.id).Msg("batch record not updated; the sweep ends the row")
	}
	h.logJob(zerolog.WarnLevel, j, OutcomeDead, de)
	return deadletter.Death(reason, de)
}

// holds reads the binding with QuerySubscriptionDetail and reports whether
// it holds the number the job sets.
func (h *handler) holds(ctx context.Context, u tasks.Update) (bool, string, *dypls.Error) {
	d, res, err := h.api.QuerySubscriptionDetail(ctx, dypls.Binding{PoolKey: u.PoolKey, ProductType: u.ProductType, SubsId: u.SubsId, PhoneNoX: u.PhoneNoX})
	h.observe("QuerySubscriptionDetail", res, err)
	if de := asAPIError(err); de != nil {
		return false, "", de
	}
	switch u.OperateType {
	case "updateNoA":
		return d.PhoneNoA == u.PhoneNoA, res.RequestID, nil
	case "updateNoB":
		return d.PhoneNoB == u.PhoneNoB, res.RequestID, nil
	}
	return false, res.RequestID, nil
}

// mark reports the job's state to its CLI batch, if it belongs to one.
func (h *handler) mark(ctx context.Context, j *job, outcome, code, msg, requestID string) error {
	if j.u.Meta == nil {
		return nil
	}
	return h.markRow(ctx, j.u.Meta.Batch, j.u.Meta.Line, outcome, code, msg, requestID)
}

func (h *handler) markRow(ctx context.Context, batch string, line int, outcome, code, msg, requestID string) error {
	if h.marker == nil || batch == "" {
		return nil
	}
	return h.marker(context.WithoutCancel(ctx), batch, line, outcome, code, mask.Text(msg), requestID)
}

// stopping reports whether the worker is shutting down.
func (h *handler) stopping() bool {
	select {
	case <-h.stop:
		return true
	default:
		return false
	}
}

// redisRetry puts the job back when Redis failed under it; not counted.
func (h *handler) redisRetry(j *job, err error) error {
	redisEvent(h.log, err).Err(err).Str("task_id", j.id).Msg("Redis error; the job will run again")
	return &retryError{reason: retryRedis, delay: jitter(2 * time.Second), err: errors.New(mask.Text(err.Error()))}
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

func (h *handler) observe(action string, res dypls.Result, err error) {
	code, class := dypls.CodeOK, "ok"
	if de := asAPIError(err); de != nil {
		code, class = de.Code, de.Class.String()
	}
	h.metrics.Calls.WithLabelValues(action, code, class).Inc()
	if res.Duration > 0 {
		h.metrics.Latency.WithLabelValues(action).Observe(res.Duration.Seconds())
	}
}

// ended counts a job's outcome and the time since it was enqueued (or
// requeued; for a plain-asynq job, first picked up).
func (h *handler) ended(j *job, outcome, code string) {
	h.metrics.Jobs.WithLabelValues(outcome, code).Inc()
	born := time.Time{}
	if j.st != nil {
		born = j.st.FirstSeen
	}
	if m := j.u.Meta; m != nil {
		switch {
		case !m.RequeuedAt.IsZero():
			born = m.RequeuedAt
		case !m.EnqueuedAt.IsZero():
			born = m.EnqueuedAt
		}
	}
	if !born.IsZero() {
		h.metrics.JobLatency.WithLabelValues(outcome).Observe(max(h.now().Sub(born), 0).Seconds())
	}
}

// logJob writes the one line per job outcome or state. Keys are snake_case,
// one per field: the API's message is api_message, beside the line's own
// message; duration_ms is the time since the attempt began.
func (h *handler) logJob(level zerolog.Level, j *job, outcome string, de *dypls.Error) {
	ev := h.log.WithLevel(level)
	if ev == nil {
		return
	}
	ev = ev.Str("task_id", j.id).Str("queue", j.queue).
		Str("subs_id", j.u.SubsId).Str("operate_type", j.u.OperateType).
		Str("phone_no_x", mask.Number(j.u.PhoneNoX)).
		Str("outcome", outcome).Str("code", de.Code).Int("attempt", j.attempt).
		Int64("version", j.version).Int64("duration_ms", h.now().Sub(j.start).Milliseconds())
	if j.u.PhoneNoA != "" {
		ev = ev.Str("phone_no_a", mask.Number(j.u.PhoneNoA))
	}
	if j.u.PhoneNoB != "" {
		ev = ev.Str("phone_no_b", mask.Number(j.u.PhoneNoB))
	}
	if de.RequestID != "" {
		ev = ev.Str("request_id", de.RequestID)
	}
	if de.Message != "" && de.Code != dypls.CodeOK {
		ev = ev.Str("api_message", mask.Text(de.Message))
	} else if de.Message != "" {
		ev = ev.Str("note", de.Message)
	}
	ev.Msg("job " + outcome)
}

// asAPIError returns err as the client's error type; any other error is
// an unknown transport failure, whose outcome is unknown.
func asAPIError(err error) *dypls.Error {
	if err == nil {
		return nil
	}
	var de *dypls.Error
	if errors.As(err, &de) {
		return de
	}
	return &dypls.Error{Code: dypls.CodeTransport, Message: mask.Text(err.Error()), Class: dypls.Transient, Ambiguous: true}
}

// lockToken is an attempt's token in the binding's lock: new for every
// attempt, so an attempt after a crash waits out the crashed attempt's lock
// (the provider may still be working on its call). The price: an attempt
// whose begin reply was lost waits out its own lock too.
func lockToken(taskID string) string { return fmt.Sprintf("job:%s:%x", taskID, rand.Uint64()) }

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
