package monitor

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/dyplsq/dyplsq/mask"
)

// readyTimeout bounds one call of Config.Ready.
var readyTimeout = 2 * time.Second

// healthz answers 200 "ok" whenever the process serves HTTP.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// PublicReasoner is implemented by errors of Config.Ready that carry a
// short reason anyone may read: what is wrong, never the detail (a halt's
// code, not its message, which may hold the AccessKeyId, the PoolKey or a
// SubsId). /readyz shows the reason to callers without the monitor's
// credentials, and the whole error only to callers with them.
type PublicReasoner interface {
	PublicReason() string
}

// notReady is a readiness failure of the monitor's own, safe to show whole.
type notReady string

func (e notReady) Error() string        { return string(e) }
func (e notReady) PublicReason() string { return string(e) }

// publicReason is what a caller without credentials may read of err: the
// reason of the first [PublicReasoner] in its chain, or nothing.
func publicReason(err error) string {
	var pr PublicReasoner
	if errors.As(err, &pr) {
		return mask.Text(pr.PublicReason())
	}
	return ""
}

// readyz answers 200 "ready", or 503 with why. The probe needs no
// credentials, so it tells only the public reason (see [PublicReasoner])
// unless authorized says the request carries the monitor's credentials:
// then the whole error, phone numbers masked. A nil authorized (no
// credentials configured) means no caller gets the detail here; it is in
// the worker's log and in enqueue queue status. ready runs in its own
// goroutine, so one that ignores its context still gets an answer out
// within readyTimeout.
func readyz(ready func(context.Context) error, authorized func(*http.Request) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := checkReady(r.Context(), ready); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			msg := "not ready"
			if authorized != nil && authorized(r) {
				msg += ": " + mask.Text(err.Error())
			} else if reason := publicReason(err); reason != "" {
				msg += ": " + reason
			}
			_, _ = w.Write([]byte(msg + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}
}

// checkReady calls ready with a deadline of readyTimeout.
func checkReady(ctx context.Context, ready func(context.Context) error) error {
	if ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ready(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return notReady("readiness check timed out after " + readyTimeout.String())
		}
		return ctx.Err()
	}
}
