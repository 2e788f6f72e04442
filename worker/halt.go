package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dyplsq/dyplsq/dypls"
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
	Halted bool
	Code   string
	// Hint says what to check, naming the setting (see [HaltHint]);
	// Message is the API's own text, masked, for operators.
	Hint      string
	Message   string
	Since     time.Time
	NextProbe time.Time
}

func (h *haltState) info() HaltInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := HaltInfo{Halted: h.halted, Code: h.code, Message: h.msg, Since: h.since, NextProbe: h.nextProbe}
	if h.halted {
		i.Hint = HaltHint(h.code)
	}
	return i
}

// Err returns nil when not halted, or an error naming the code, what to
// check and the API's message.
func (i HaltInfo) Err() error {
	if !i.Halted {
		return nil
	}
	return fmt.Errorf("halted since %s by %s: %s (next probe %s; the API said: %s)",
		i.Since.UTC().Format(time.RFC3339), i.Code, i.Hint, i.NextProbe.UTC().Format(time.RFC3339), i.Message)
}

// HaltHint says what an operator should check after a halt by code,
// naming the setting: the secret, the AccessKey, the clock, the STS token,
// the account or the RAM permissions.
func HaltHint(code string) string {
	switch {
	case code == dypls.CodeCredentials:
		return "check the credentials source the message names (ALIBABA_CLOUD_CREDENTIALS_URI, the OIDC role and token file, the ECS RAM role or the CLI profile): it handed out no credentials"
	case code == "SignatureDoesNotMatch", code == "IncompleteSignature":
		return "check ALIBABA_CLOUD_ACCESS_KEY_SECRET: the signature does not match the AccessKeyId's secret (a wrong or truncated secret; also check the clock)"
	case strings.HasPrefix(code, "InvalidAccessKeyId"), code == "Forbidden.AccessKeyDisabled":
		return "check ALIBABA_CLOUD_ACCESS_KEY_ID: the AccessKey does not exist or is disabled"
	case strings.HasPrefix(code, "InvalidTimeStamp"):
		return "check this machine's clock (NTP): the request time is too far from the provider's"
	case strings.HasPrefix(code, "InvalidSecurityToken"):
		return "check ALIBABA_CLOUD_SECURITY_TOKEN or the credentials source: the STS token expired (and no fresher one was handed out) or does not belong to the AccessKey"
	case code == "Forbidden.RiskControl":
		return "check the Alibaba Cloud account in the console: risk control blocks its calls (an account-level block, not a permission; the console or support says why)"
	case code == "Forbidden.RAM", code == "isp.RAM_PERMISSION_DENY", strings.HasPrefix(code, "Forbidden"):
		return "check the RAM policy of the AccessKey's user: it lacks permission for Dyplsapi"
	case strings.HasPrefix(code, "InvalidApi"), strings.HasPrefix(code, "InvalidAction"), code == "InvalidVersion", code == "UnsupportedHTTPMethod":
		return "check DYPLS_ENDPOINT: it does not serve the Dyplsapi API"
	case strings.HasPrefix(code, "isv."):
		return "check the Alibaba Cloud account in the console: the account or the privacy-number service is not usable (arrears, closed, not subscribed)"
	}
	return "check the account, the AccessKey and the endpoint"
}

// credentialCode reports whether code says the request's signature or
// AccessKey is refused: every signed call fails with it, so a cheap query
// can probe it as well as an update.
func credentialCode(code string) bool {
	return code == "SignatureDoesNotMatch" || code == "IncompleteSignature" || code == dypls.CodeCredentials ||
		strings.HasPrefix(code, "InvalidAccessKeyId") || strings.HasPrefix(code, "InvalidTimeStamp") ||
		strings.HasPrefix(code, "InvalidSecurityToken") || code == "Forbidden.AccessKeyDisabled"
}

// tryProbe takes the probe without waiting, if the worker is halted, no
// probe runs and the probe time has come.
func (h *haltState) tryProbe() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.halted || h.probing || h.now().Before(h.nextProbe) {
		return false
	}
	h.probing = true
	return true
}

// probeNow brings the next probe forward to now and starts the probe
// interval afresh, when an operator says the cause is fixed.
func (h *haltState) probeNow() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.halted {
		return false
	}
	h.nextProbe, h.interval = h.now(), h.min
	h.notify()
	return true
}

func (h *haltState) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// admit decides whether a job may call the API. It returns probe=true when
// the job is the halt's probe. When halted and it is not yet time to probe,
// it waits up to maxWait (or until stop or ctx ends) and returns ok=false
// with the time left until the next probe. slept says it waited.
func (h *haltState) admit(ctx context.Context, stop <-chan struct{}, maxWait time.Duration) (ok, probe, slept bool, retryIn time.Duration) {
	deadline := h.now().Add(maxWait)
	for {
		h.mu.Lock()
		if !h.halted {
			h.mu.Unlock()
			return true, false, slept, 0
		}
		now := h.now()
		if !h.probing && !now.Before(h.nextProbe) {
			h.probing = true
			h.mu.Unlock()
			return true, true, slept, 0
		}
		wake := h.nextProbe
		if h.probing {
			wake = now.Add(h.min)
		}
		changed := h.changed
		h.mu.Unlock()

		wait := min(wake.Sub(now), deadline.Sub(now))
		if wait <= 0 {
			return false, false, slept, max(wake.Sub(now), 0) + jitter(time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-changed:
		case <-stop:
			t.Stop()
			return false, false, slept, jitter(time.Second)
		case <-ctx.Done():
			t.Stop()
			return false, false, slept, jitter(time.Second)
		}
		t.Stop()
		slept = true
		if !h.now().Before(deadline) {
			h.mu.Lock()
			left := h.nextProbe.Sub(h.now())
			h.mu.Unlock()
			return false, false, slept, max(left, 0) + jitter(time.Second)
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
