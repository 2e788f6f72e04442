package worker

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// haltState is the per-process circuit that stops calls to the API when an
// answer says every job would fail (credentials, account, permission,
// clock). While halted, jobs wait without calling the API and without
// counting an attempt; when the probe time comes, exactly one job makes its
// call as the probe. A probe answered with anything but a systemic code ends
// the halt; a systemic answer doubles the probe interval, up to max.
type haltState struct {
	min, max time.Duration
	now      func() time.Time

	mu        sync.Mutex
	halted    bool
	code, msg string
	since     time.Time
	nextProbe time.Time
	interval  time.Duration
	probing   bool
	changed   chan struct{} // closed and replaced on every change
}

func newHaltState(min, max time.Duration, now func() time.Time) *haltState {
	return &haltState{min: min, max: max, now: now, changed: make(chan struct{})}
}

// HaltInfo describes a halt for readiness, metrics and operators.
type HaltInfo struct {
	Halted    bool
	Code      string
	Message   string
	Since     time.Time
	NextProbe time.Time
}

func (h *haltState) info() HaltInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HaltInfo{Halted: h.halted, Code: h.code, Message: h.msg, Since: h.since, NextProbe: h.nextProbe}
}

// Err returns nil when not halted, or an error naming the code and reason.
func (i HaltInfo) Err() error {
	if !i.Halted {
		return nil
	}
	return fmt.Errorf("halted since %s by %s: %s (next probe %s)",
		i.Since.UTC().Format(time.RFC3339), i.Code, i.Message, i.NextProbe.UTC().Format(time.RFC3339))
}

func (h *haltState) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// admit decides whether a job may call the API. It returns probe=true when
// the job is the halt's probe. When halted and it is not yet time to probe,
// it waits up to maxWait (or until stop or ctx ends) and returns ok=false
// with the time left until the next probe.
func (h *haltState) admit(ctx context.Context, stop <-chan struct{}, maxWait time.Duration) (ok, probe bool, retryIn time.Duration) {
	deadline := h.now().Add(maxWait)
	for {
		h.mu.Lock()
		if !h.halted {
			h.mu.Unlock()
			return true, false, 0
		}
		now := h.now()
		if !h.probing && !now.Before(h.nextProbe) {
			h.probing = true
			h.mu.Unlock()
			return true, true, 0
		}
		wake := h.nextProbe
		if h.probing {
			wake = now.Add(h.min)
		}
		changed := h.changed
		h.mu.Unlock()

		wait := min(wake.Sub(now), deadline.Sub(now))
		if wait <= 0 {
			return false, false, max(wake.Sub(now), 0) + jitter(time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-changed:
		case <-stop:
			t.Stop()
			return false, false, jitter(time.Second)
		case <-ctx.Done():
			t.Stop()
			return false, false, jitter(time.Second)
		}
		t.Stop()
		if !h.now().Before(deadline) {
			h.mu.Lock()
			left := h.nextProbe.Sub(h.now())
			h.mu.Unlock()
			return false, false, max(left, 0) + jitter(time.Second)
		}
	}
}

// trip halts (or keeps halted) after a systemic answer. A probe that failed
// doubles the interval.
func (h *haltState) trip(code, msg string, wasProbe bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	switch {
	case !h.halted:
		h.halted, h.since, h.interval = true, now, h.min
	case wasProbe:
		h.interval = min(h.interval*2, h.max)
	}
	if wasProbe {
		h.probing = false
	}
	h.code, h.msg = code, msg
	h.nextProbe = now.Add(h.interval)
	h.notify()
}

// resolve ends the probe: resume after an answer that is not systemic;
// stay halted (same interval) when the probe got no answer at all.
func (h *haltState) resolve(answered bool) (resumed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.probing = false
	if !h.halted {
		return false
	}
	if !answered {
		h.nextProbe = h.now().Add(h.interval)
		h.notify()
		return false
	}
	h.halted = false
	h.code, h.msg = "", ""
	h.notify()
	return true
}

// release gives the probe back unused (the job made no call), so that
// another job may probe at once.
func (h *haltState) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.probing {
		h.probing = false
		h.notify()
	}
}
