package worker

import (
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dypls"
)

// TestSettle is the decision after an attempt, case by case, without Redis
// or the API.
func TestSettle(t *testing.T) {
	code := func(c string) *dypls.Error { return &dypls.Error{Code: c, Class: dypls.Classify(c)} }
	unknown := func(c string, status int) *dypls.Error {
		return &dypls.Error{Code: c, Class: dypls.Transient, Ambiguous: true, HTTPStatus: status}
	}
	for _, c := range []struct {
		name string
		a    attempt
		want settlement
	}{
		{"ok", attempt{op: "updateNoA"}, settlement{act: actApplied}},
		{"ok after doubt", attempt{op: "updateNoA", ambiguous: true}, settlement{act: actApplied}},
		{"never sent", attempt{err: code(dypls.CodeNotCalled), attempts: 9, maxAttempts: 10}, settlement{act: actRetryNotSent}},
		{"conflict", attempt{err: code("isv.BIND_CONFLICT"), op: "updateNoA"}, settlement{act: actDead}},
		{"conflict after doubt", attempt{err: code("isv.BIND_CONFLICT"), op: "updateNoB", ambiguous: true}, settlement{act: actCheck}},
		{"conflict after doubt, field not readable", attempt{err: code("isv.BIND_CONFLICT"), op: "updateOutId", ambiguous: true}, settlement{act: actDead}},
		{"other permanent after doubt", attempt{err: code("isv.SUBS_NOT_EXIST"), op: "updateNoA", ambiguous: true}, settlement{act: actDead}},
		{"throttled on the last attempt", attempt{err: code("isv.FLOW_LIMIT"), attempts: 9, maxAttempts: 10}, settlement{act: actRetryThrottled}},
		{"systemic", attempt{err: code("isv.ACCOUNT_ABNORMAL"), attempts: 9, maxAttempts: 10}, settlement{act: actHalt}},
		{"transient definite", attempt{err: code("isp.VENDOR_UNAVAILABLE"), attempts: 0, maxAttempts: 10},
			settlement{act: actRetryTransient, counted: true}},
		{"timeout", attempt{err: unknown(dypls.CodeTimeout, 0), maxAttempts: 10},
			settlement{act: actRetryTransient, counted: true, inDoubt: true, running: true}},
		{"502: answered, in doubt", attempt{err: unknown("HTTP.502", 502), maxAttempts: 10},
			settlement{act: actRetryTransient, counted: true, inDoubt: true}},
		{"504: the gateway gave up waiting", attempt{err: unknown("HTTP.504", 504), maxAttempts: 10},
			settlement{act: actRetryTransient, counted: true, inDoubt: true, running: true}},
		{"last attempt", attempt{err: code("isp.VENDOR_UNAVAILABLE"), op: "updateNoA", attempts: 9, maxAttempts: 10},
			settlement{act: actExhausted, counted: true}},
		{"last attempt after the provider's own failure", attempt{err: unknown("isp.SYSTEM_ERROR", 200), op: "updateNoA", attempts: 9, maxAttempts: 10},
			settlement{act: actCheck, counted: true, inDoubt: true}},
		{"last attempt in doubt", attempt{err: unknown(dypls.CodeConnectionDropped, 0), op: "updateNoA", attempts: 9, maxAttempts: 10},
			settlement{act: actCheck, counted: true, inDoubt: true, running: true}},
		{"last attempt after doubt", attempt{err: code("isp.SYSTEM_ERROR"), op: "updateNoB", ambiguous: true, attempts: 9, maxAttempts: 10},
			settlement{act: actCheck, counted: true}},
		{"time budget: failing for less than JOB_RETRY_FOR, attempts beyond the count", attempt{err: code("HTTP.503"), op: "updateNoA", attempts: 40, maxAttempts: 10,
			retryFor: 30 * time.Minute, failingFor: 5 * time.Minute},
			settlement{act: actRetryTransient, counted: true}},
		{"time budget used up", attempt{err: code("HTTP.503"), op: "updateOutId", attempts: 3, maxAttempts: 10,
			retryFor: 30 * time.Minute, failingFor: 30 * time.Minute},
			settlement{act: actExhausted, counted: true}},
		{"time budget used up in doubt", attempt{err: unknown(dypls.CodeTimeout, 0), op: "updateNoA", attempts: 3,
			retryFor: time.Minute, failingFor: 2 * time.Minute},
			settlement{act: actCheck, counted: true, inDoubt: true, running: true}},
		{"throttled with a time budget", attempt{err: code("isv.FLOW_LIMIT"), retryFor: time.Minute, failingFor: time.Hour},
			settlement{act: actRetryThrottled}},
		{"last attempt in doubt, field not readable", attempt{err: unknown(dypls.CodeTimeout, 0), op: "updateExpire", attempts: 9, maxAttempts: 10},
			settlement{act: actExhausted, counted: true, inDoubt: true, running: true}},
	} {
		if got := settle(c.a); got != c.want {
			t.Errorf("%s: settle = %+v (%s), want %+v (%s)", c.name, got, got.act, c.want, c.want.act)
		}
	}
}

// TestSettleCheck: a settling query that fails is retried by its class
// after a conflict, and never turns the job dead.
func TestSettleCheck(t *testing.T) {
	code := func(c string) *dypls.Error { return &dypls.Error{Code: c, Class: dypls.Classify(c)} }
	for _, c := range []struct {
		name string
		c    check
		want action
	}{
		{"holds", check{held: true}, actApplied},
		{"does not hold", check{}, actDead},
		{"throttled", check{err: code("Throttling.User")}, actRetryThrottled},
		{"transient", check{err: code("isp.SYSTEM_ERROR")}, actRetryTransient},
		{"timeout", check{err: code(dypls.CodeTimeout)}, actRetryTransient},
		{"systemic", check{err: code("InvalidAccessKeyId.NotFound")}, actHalt},
		{"binding gone", check{err: code("isv.SUBS_NOT_EXIST")}, actDead},
	} {
		if got := settleCheck(c.c); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestSettleThrottle: throttling concentrated on one binding backs off
// that binding alone; spread across bindings, or from the gateway, it cuts
// the shared rate.
func TestSettleThrottle(t *testing.T) {
	base, maxD := time.Second, 30*time.Second
	for _, c := range []struct {
		name string
		t    throttle
		want throttleDecision
	}{
		{"one binding, first answer", throttle{code: "isv.FLOW_LIMIT", spread: 1, minSpread: 3, repeats: 1, base: base, max: maxD},
			throttleDecision{delay: 2 * time.Second}},
		{"one binding, again", throttle{code: "isv.FLOW_LIMIT", spread: 1, minSpread: 3, repeats: 3, base: base, max: maxD},
			throttleDecision{delay: 8 * time.Second}},
		{"one binding, many times", throttle{code: "isv.FLOW_LIMIT", spread: 2, minSpread: 3, repeats: 20, base: base, max: maxD},
			throttleDecision{delay: maxD}},
		{"spread across bindings", throttle{code: "isv.FLOW_LIMIT", spread: 3, minSpread: 3, repeats: 5, base: base, max: maxD},
			throttleDecision{cutShared: true, delay: base}},
		{"gateway quota", throttle{code: "Throttling.User", spread: 1, minSpread: 3, repeats: 4, base: base, max: maxD},
			throttleDecision{cutShared: true, delay: base}},
		{"API quota", throttle{code: "Throttling.Api", spread: 1, minSpread: 3, base: base, max: maxD},
			throttleDecision{cutShared: true, delay: base}},
	} {
		if got := settleThrottle(c.t); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
