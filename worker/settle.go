package worker

import (
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

var actionNames = [...]string{"applied", "check", "throttled", "transient", "not sent", "halt", "dead", "exhausted"}

func (a action) String() string { return actionNames[a] }

// attempt is what settling an attempt needs to know: the call's answer
// and the job's history.
type attempt struct {
	err         *dypls.Error // nil: the call answered OK
	op          string       // the job's OperateType
	ambiguous   bool         // an earlier attempt may have applied the update
	attempts    int          // counted attempts before this one
	maxAttempts int
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
//     unknown (timeout, dropped connection, 5xx); when the attempts are
//     used up the job is dead, after a check if something may have applied.
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
	if a.attempts+1 >= a.maxAttempts {
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
