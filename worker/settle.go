package worker

import (
	"time"

	"github.com/dyplsq/dyplsq/dypls"
)

// action is what the handler does once an attempt's call has answered.
type action int

const (
	actApplied        action = iota // record the version, report applied
	actCheck                        // ask QuerySubscriptionDetail whether the binding holds the value
	actRetryThrottled               // again after a short delay, not counted; lower the shared rate
	actRetryTransient               // again after backoff, counted
	actRetryNotSent                 // again soon, not counted: the call never left
	actHalt                         // an account-wide answer: this worker stops calling
	actDead                         // the job cannot succeed
	actExhausted                    // counted attempts used up: dead
)

// actionNames name the actions in logs and metrics; an action that ends
// or retries the job is named as its outcome or retry reason.
var actionNames = [...]string{OutcomeApplied, "check", StateThrottled, StateTransient, retryNotSent, "halt", OutcomeDead, "exhausted"}

func (a action) String() string { return actionNames[a] }

// attempt is what settling an attempt needs to know: the call's answer
// and the job's history.
type attempt struct {
	err         *dypls.Error // nil: the call answered OK
	op          string       // the job's OperateType
	ambiguous   bool         // an earlier attempt may have applied the update
	attempts    int          // counted attempts before this one
	maxAttempts int
	// retryFor, when positive, is the retry budget by time: transient
	// answers are retried until this long after the job's first failure,
	// however many attempts that takes (maxAttempts is then ignored).
	retryFor time.Duration
	// failingFor is how long the job has been failing, from its first
	// failure to this answer (zero for a first failure).
	failingFor time.Duration
}

// exhausted reports whether a counted failure now uses up the job's retry
// budget: the time budget when one is set, else the attempts.
func (a attempt) exhausted() bool {
	if a.retryFor > 0 {
		return a.failingFor >= a.retryFor
	}
	return a.attempts+1 >= a.maxAttempts
}

// settlement is the decision for one attempt.
type settlement struct {
	act action
	// counted: the attempt uses up one of the job's attempts.
	counted bool
	// inDoubt: this very call may have applied the update, so the job's
	// intent stays in the fence.
	inDoubt bool
	// running: the provider may still be working on this call (no answer
	// came: a timeout, a dropped connection, a gateway timeout), so the
	// binding stays locked a while.
	running bool
}

// settle decides what an attempt's answer means. It is a pure function of
// the answer and the job's history, so every case is a table test
// (settle_test.go) and nothing here touches Redis or the API.
//
//   - OK: applied.
//   - The call never left (the context ended first): again, not counted.
//   - Permanent: dead, except isv.BIND_CONFLICT on a number update after
//     an attempt whose outcome is unknown: the earlier attempt may have set
//     the number, so the binding is checked first.
//   - Throttled: again after a short delay, not counted.
//   - Systemic: the worker halts; the job waits, not counted.
//   - Transient: counted, and in doubt when the answer leaves the outcome
//     unknown (timeout, dropped connection, 5xx, the provider's own
//     failures: errclass.MayHaveApplied); when the retry budget is
//     used up (the attempts, or JOB_RETRY_FOR since the first failure) the
//     job is dead, after a check if something may have applied.
func settle(a attempt) settlement {
	e := a.err
	switch {
	case e == nil:
		return settlement{act: actApplied}
	case e.Code == dypls.CodeNotCalled:
		return settlement{act: actRetryNotSent}
	}
	switch e.Class {
	case dypls.Permanent:
		if e.Code == "isv.BIND_CONFLICT" && a.ambiguous && checkable(a.op) {
			return settlement{act: actCheck}
		}
		return settlement{act: actDead}
	case dypls.Throttled:
		return settlement{act: actRetryThrottled}
	case dypls.Systemic:
		return settlement{act: actHalt}
	}
	s := settlement{act: actRetryTransient, counted: true, inDoubt: e.Ambiguous, running: mayStillRun(e)}
	if a.exhausted() {
		s.act = actExhausted
		if (a.ambiguous || e.Ambiguous) && checkable(a.op) {
			s.act = actCheck
		}
	}
	return s
}

// mayStillRun reports whether the provider may still be processing a call
// that ended with e: the answer never came, or the gateway gave up waiting.
func mayStillRun(e *dypls.Error) bool {
	switch e.Code {
	case dypls.CodeTimeout, dypls.CodeConnectionDropped, dypls.CodeTransport, dypls.CodeHTTPPrefix + "504":
		return true
	}
	return e.HTTPStatus == 504
}

// checkable reports whether QuerySubscriptionDetail shows the value an
// update of op sets, so an unknown outcome can be settled by reading the
// binding.
func checkable(op string) bool {
	return op == "updateNoA" || op == "updateNoB"
}

// check is what a QuerySubscriptionDetail settling a conflict answered.
type check struct {
	err  *dypls.Error // nil: the query answered
	held bool         // the binding holds the value the job sets
}

// settleCheck decides after a conflict's check. A query that fails is
// retried by its own class; it never makes the job dead, since the update
// may well hold. (When the attempts ran out, the check is a last chance,
// not a new budget: the handler's lastCheck ends the job either way.)
func settleCheck(c check) action {
	if c.err == nil {
		if c.held {
			return actApplied
		}
		return actDead
	}
	switch c.err.Class {
	case dypls.Throttled:
		return actRetryThrottled
	case dypls.Systemic:
		return actHalt
	case dypls.Permanent:
		// The binding cannot be read (it no longer exists, say): the
		// update cannot hold either.
		return actDead
	}
	return actRetryTransient
}

// throttle is what is known about a throttling answer beyond its code:
// how widely throttling is spread over the fleet's bindings, and how often
// this binding was throttled lately.
type throttle struct {
	code string
	// spread is the number of distinct SubsIds throttled across the fleet
	// within the spread window, this one included; minSpread is the least
	// that counts as throttling of the account rather than of one binding.
	spread, minSpread int
	// repeats is how many throttling answers this SubsId got within the
	// last minute, this one included.
	repeats int
	// base is the mean delay after a throttling answer, max the longest
	// delay of a binding backed off alone.
	base, max time.Duration
}

// throttleDecision is what a throttling answer does.
type throttleDecision struct {
	// cutShared lowers the fleet's shared rate.
	cutShared bool
	// delay is the mean delay before the job runs again.
	delay time.Duration
}

// settleThrottle decides what a throttling answer means. The gateway's
// codes (Throttling, Throttling.User, Throttling.Api) say the account or
// the API is over its rate: the shared rate is cut. isv.FLOW_LIMIT is the
// business flow control, which also limits how often one binding may
// change: when it is spread across at least minSpread bindings it is taken
// as the account's rate and the shared rate is cut; concentrated on fewer
// bindings it backs off this binding alone, doubling its delay with every
// repeat (up to max) and leaving the fleet's rate as it is.
func settleThrottle(t throttle) throttleDecision {
	if t.code != "isv.FLOW_LIMIT" || t.spread >= t.minSpread {
		return throttleDecision{cutShared: true, delay: t.base}
	}
	d := t.base
	for i := 0; i < t.repeats && d < t.max; i++ {
		d *= 2
	}
	return throttleDecision{delay: min(d, max(t.max, t.base))}
}
