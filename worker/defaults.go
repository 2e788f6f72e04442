package worker

import (
	"fmt"
	"time"
)

// The defaults of [Config]: a zero field takes the value named here. The
// worker command shows the same values as its flag defaults.
const (
	DefaultLiveWeight  = 6  // weight of tasks.DefaultLiveQueue
	DefaultBulkWeight  = 1  // weight of tasks.DefaultBulkQueue
	DefaultConcurrency = 20 // jobs run at once by one worker
	DefaultMaxAttempts = 10 // counted (transient) attempts before a job is dead

	DefaultMaxAge      = 24 * time.Hour  // a job older than this is dead
	DefaultBackoffBase = time.Second     // first transient backoff ceiling
	DefaultBackoffMax  = 5 * time.Minute // transient backoff ceiling

	DefaultThrottleSpread     = 3 // SubsIds throttled within ThrottleWindow before the shared rate is cut
	DefaultThrottleWindow     = 5 * time.Second
	DefaultThrottleBindingMax = time.Minute
	DefaultThrottleDelay      = time.Second

	DefaultHaltProbeMin  = 10 * time.Second
	DefaultHaltProbeMax  = 5 * time.Minute
	DefaultHaltWait      = 30 * time.Second
	DefaultSweepInterval = time.Minute
	DefaultBusyWait      = 100 * time.Millisecond
	DefaultBusyDelay     = 300 * time.Millisecond
	DefaultLimitWait     = time.Second
	DefaultCommitWait    = 10 * time.Second

	// DefaultTaskCheckInterval is how long a worker whose queues are empty
	// waits before it looks again: the wait a job enqueued on an idle queue
	// sees (p99 enqueue to applied under 100 ms at 200 jobs/s), for about 50
	// dequeue scripts per second per queue from an idle worker.
	DefaultTaskCheckInterval        = 20 * time.Millisecond
	DefaultDelayedTaskCheckInterval = 200 * time.Millisecond
)

// DefaultQPS is the shared UpdateSubscription rate, in calls per second
// across every worker, that the worker command uses when DYPLS_QPS is not
// set. A zero [Config.QPS] means no cap.
const DefaultQPS = 1000

// MaxCallTimeout is the longest API call timeout (DYPLS_TIMEOUT) [New]
// accepts: a job makes at most two calls, which must end well within the
// 5 minute task timeout.
const MaxCallTimeout = time.Minute

// MaxHaltWait is the longest [Config.HaltWait] [New] accepts, below the task
// timeout.
const MaxHaltWait = 2 * time.Minute

// fmtDuration writes d as the settings are written: whole minutes as "1m",
// anything else as time.Duration does.
func fmtDuration(d time.Duration) string {
	if d > 0 && d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
