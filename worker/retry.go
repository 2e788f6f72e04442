package worker

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dypls"
)

// Reasons of a retry besides the states ([StateThrottled],
// [StateTransient], [StateHalted], [StateBusy]): the start of the job's
// last error, as asynq and its UI show it.
const (
	retryStopping    = "stopping"     // the worker is shutting down
	retryNotSent     = "not sent"     // the call never left
	retryRateLimited = "rate limited" // the shared rate had no room within LimitWait
	retryCheckFailed = "check failed" // the check with QuerySubscriptionDetail failed
	retryRedis       = "redis"        // Redis failed around the attempt
)

// retryError asks asynq to run the job again after delay. A retry that is
// not a failure (throttled, halted, busy) is not counted by asynq either.
type retryError struct {
	reason  string // a state or one of the retry reasons above
	delay   time.Duration
	failure bool
	err     error
}

func (e *retryError) Error() string {
	if e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

func (e *retryError) Unwrap() error { return e.err }

// cause returns the API error behind the retry, or an empty one.
func (e *retryError) cause() *dypls.Error {
	var de *dypls.Error
	if errors.As(e.err, &de) {
		return de
	}
	if e.err != nil {
		return &dypls.Error{Message: e.err.Error()}
	}
	return &dypls.Error{}
}

// retryDelay is asynq's RetryDelayFunc: the delay the handler chose, or a
// conservative backoff for errors it did not make (panics, lease expiry).
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var re *retryError
	if errors.As(err, &re) {
		return re.delay
	}
	return fullJitter(n+1, time.Second, 5*time.Minute)
}

// isFailure is asynq's IsFailure: only counted retries are failures.
func isFailure(err error) bool {
	var re *retryError
	if errors.As(err, &re) {
		return re.failure
	}
	return true
}

// fullJitter is exponential backoff with full jitter: a uniform delay in
// [0, min(max, base·2^(attempt-1))], at least 10 ms.
func fullJitter(attempt int, base, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	ceil := base
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max {
		ceil = max
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	return max2(d, 10*time.Millisecond)
}

// jitter returns d scaled by a uniform factor in [0.5, 1.5).
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

func max2(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
