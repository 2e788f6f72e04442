package monitor

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/dyplsq/dyplsq/dypls"
)

// readyTimeout bounds one call of Config.Ready.
var readyTimeout = 2 * time.Second

// healthz answers 200 "ok" whenever the process serves HTTP.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 "ready", or 503 with the (masked) reason ready gives.
// ready runs in its own goroutine, so one that ignores its context still
// gets an answer out within readyTimeout.
func readyz(ready func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := checkReady(r.Context(), ready); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + dypls.Mask(err.Error()) + "\n"))
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
			return errors.New("readiness check timed out after " + readyTimeout.String())
		}
		return ctx.Err()
	}
}
