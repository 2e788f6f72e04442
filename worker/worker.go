// Package worker runs binding-update jobs from Redis against Dyplsapi until
// each ends applied, superseded or dead, passing through retrying and
// halted as RELIABILITY.md describes.
//
// Outcome by class of the answer: permanent → dead at once (archived, with
// a durable dead-letter record); throttled → a short jittered delay, never
// counted as an attempt; transient → exponential backoff with full jitter,
// counted against JOB_MAX_ATTEMPTS; systemic → the worker halts: it stops
// calling the API, keeps its jobs without counting attempts, reports
// not-ready with the code, probes with backoff and resumes by itself. Every
// job is bounded by JOB_MAX_AGE. asynq's own MaxRetry is only a backstop.
//
// Timeouts nest so that a job is never cut mid-call without knowing it. The
// SDK takes no context, so a call ends only at its own timeout
// (DYPLS_TIMEOUT, at most 1m). A job makes at most two calls (the update and
// an ambiguity check); every other wait in the handler (a halt, a busy
// binding, the rate limit) ends at once when shutdown begins. The shutdown
// timeout is two call timeouts plus 5 s, so calls in flight finish before
// asynq gives up on them; the task timeout set at enqueue (5 min) is above
// all of it, as a backstop. Before each call an attempt-started marker is
// written to Redis: if the process dies mid-call anyway, the next attempt
// knows the outcome is unknown.
package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// Config configures a Worker. Zero values take the documented defaults.
type Config struct {
	Queues map[string]int // queue → weight; default dyplsq-live:6, dyplsq-bulk:1
	// Shards splits queues of Queues (queue → shard count, 1 to
	// tasks.MaxShards; WORKER_SHARDS): see servedQueues. A queue not named
	// here is served as split in Redis.
	Shards      map[string]int
	Concurrency int           // default 20
	MaxAttempts int           // counted (transient) attempts; default 10
	MaxAge      time.Duration // default 24h

	// RetryFor, when positive, is the retry budget by time (JOB_RETRY_FOR):
	// transient failures are retried until this long after the job's first
	// failure, whatever MaxAttempts says.
	RetryFor time.Duration
	// ThrottleSpread is how many distinct SubsIds must be throttled with
	// isv.FLOW_LIMIT within ThrottleWindow, across the fleet, before the
	// shared rate is cut; fewer back off their own bindings; default 3.
	ThrottleSpread int
	// ThrottleWindow is the window of ThrottleSpread; default 5s.
	ThrottleWindow time.Duration
	// ThrottleBindingMax is the longest delay of a binding backed off
	// alone; default 1m.
	ThrottleBindingMax time.Duration

	BackoffBase   time.Duration // first transient backoff ceiling; default 1s
	BackoffMax    time.Duration // default 5m
	ThrottleDelay time.Duration // mean delay after a throttling answer; default 1s
	HaltProbeMin  time.Duration // default 10s
	HaltProbeMax  time.Duration // default 5m
	HaltWait      time.Duration // how long a job waits in a halt before going back to the queue; default 30s
	SweepInterval time.Duration // dead-letter sweep of the archive; default 1m
	BusyWait      time.Duration // how long a job waits for its binding's lock in the handler; default 100ms
	BusyDelay     time.Duration // mean delay before a job whose binding stayed busy runs again; default 300ms
	LimitWait     time.Duration // the longest a job waits for a rate-limit token in the handler; default 1s

	// QPS caps UpdateSubscription calls per second across every worker
	// sharing the Redis (DYPLS_QPS); 0 means no cap and no adaptation.
	QPS float64

	// AmbiguousHold is how long a binding stays locked after a call whose
	// outcome is unknown (a timeout, a dropped connection, a 5xx), so that
	// the next call for the binding cannot reach the provider while it may
	// still be applying this one; default the API call timeout (at least
	// 1s). See RELIABILITY.md.
	AmbiguousHold time.Duration
	// CommitWait is how long the handler insists on recording an applied
	// version before it gives up and lets the job run again; default 10s.
	CommitWait time.Duration

	// ShutdownTimeout is how long in-flight jobs may finish on shutdown;
	// default twice the API call timeout plus 5 s.
	ShutdownTimeout          time.Duration
	TaskCheckInterval        time.Duration // default 20ms: how long an idle worker waits before it looks at its queues again; see BENCHMARKS.md, "Latency"
	DelayedTaskCheckInterval time.Duration // default 200ms: jobs back from a short delay (busy, throttled) wait at most this long more

	KeyPrefix string // prefix of dyplsq's own Redis keys; default [tasks.DefaultKeyPrefix]
	WorkerID  string // default host:pid

	// Logger is the process's logger, without a component: the worker
	// adds component=worker to its own lines and component=asynq to
	// asynq's.
	Logger   zerolog.Logger
	Registry prometheus.Registerer // nil: metrics are kept but not registered
	Now      func() time.Time
}

func (c Config) withDefaults(callTimeout time.Duration) Config {
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{tasks.DefaultLiveQueue: DefaultLiveWeight, tasks.DefaultBulkQueue: DefaultBulkWeight}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	def(&c.MaxAge, DefaultMaxAge)
	if c.ThrottleSpread <= 0 {
		c.ThrottleSpread = DefaultThrottleSpread
	}
	def(&c.ThrottleWindow, DefaultThrottleWindow)
	def(&c.ThrottleBindingMax, DefaultThrottleBindingMax)
	def(&c.BackoffBase, DefaultBackoffBase)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.ThrottleDelay, DefaultThrottleDelay)
	def(&c.HaltProbeMin, DefaultHaltProbeMin)
	def(&c.HaltProbeMax, DefaultHaltProbeMax)
	def(&c.HaltWait, DefaultHaltWait)
	def(&c.SweepInterval, DefaultSweepInterval)
	def(&c.BusyWait, DefaultBusyWait)
	def(&c.BusyDelay, DefaultBusyDelay)
	def(&c.LimitWait, DefaultLimitWait)
	def(&c.ShutdownTimeout, 2*callTimeout+5*time.Second)
	def(&c.AmbiguousHold, max(callTimeout, time.Second))
	def(&c.CommitWait, DefaultCommitWait)
	def(&c.TaskCheckInterval, DefaultTaskCheckInterval)
	def(&c.DelayedTaskCheckInterval, DefaultDelayedTaskCheckInterval)
	if c.KeyPrefix == "" {
		c.KeyPrefix = tasks.DefaultKeyPrefix
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Worker is one worker process's engine: an asynq server with dyplsq's
// handler, its dead-letter sweep and its halt reporting.
type Worker struct {
	cfg       Config
	rdb       redis.UniversalClient
	h         *handler
	inspector *asynq.Inspector

	// srvMu guards the asynq server and the queues it serves with their
	// weights (servedQueues): watchQueues replaces both when the split of
	// a queue changes.
	srvMu    sync.Mutex
	srv      *asynq.Server
	served   map[string]int
	stopping bool
	// pendingShards are the configured shard counts not applied yet
	// (Redis did not answer at start); only watchQueues uses it.
	pendingShards map[string]int
	halts         *admin.Halts
	sweeper       *deadletter.Sweeper
	metrics       *Metrics
	log           zerolog.Logger

	haltReported bool      // a halt is in Redis; only the halt loop uses it
	haltCode     string    // the code dyplsq_halted shows; only the halt loop uses it
	redisDown    time.Time // when Redis stopped answering; only the Redis watch uses it

	// Used by the halt watch only: the operators' probe counter last seen,
	// and when the credentials are checked next.
	probeSeen int64
	nextCheck time.Time
	api       *dypls.Client
	// lastCheck is what the last credential check found, for readiness.
	lastCheck atomic.Pointer[string]

	stopOnce sync.Once
	loops    sync.WaitGroup
	cancel   context.CancelFunc
}

// New builds a Worker on a shared Redis client and API client.
func New(cfg Config, rdb redis.UniversalClient, api *dypls.Client) (*Worker, error) {
	callTimeout := api.Config().Timeout
	cfg = cfg.withDefaults(callTimeout)
	if cfg.ShutdownTimeout <= callTimeout {
		return nil, fmt.Errorf("shutdown timeout %s must exceed the API call timeout %s", cfg.ShutdownTimeout, callTimeout)
	}
	if callTimeout > MaxCallTimeout {
		return nil, fmt.Errorf("DYPLS_TIMEOUT %s is too long: at most %s, so that a job (two calls) ends well within the 5 minute task timeout", callTimeout, fmtDuration(MaxCallTimeout))
	}
	if cfg.MaxAge > tasks.MaxJobAge {
		return nil, fmt.Errorf("JOB_MAX_AGE %s is too long: at most %s, so that a job still runs while its binding's fence remembers the versions applied since (see tasks.VersionWindow)", cfg.MaxAge, fmtDuration(tasks.MaxJobAge))
	}
	if cfg.HaltWait > MaxHaltWait {
		return nil, fmt.Errorf("halt wait must be at most %s, below the task timeout", fmtDuration(MaxHaltWait))
	}
	if cfg.MaxAttempts >= tasks.DefaultMaxRetry {
		return nil, fmt.Errorf("JOB_MAX_ATTEMPTS %d must be below asynq's retry limit for dyplsq jobs (%d)", cfg.MaxAttempts, tasks.DefaultMaxRetry)
	}
	// A job's state (and its intent in the fence) lives as long as the job
	// can still run, and a day more.
	stateTTL := cfg.MaxAge + 24*time.Hour
	m := NewMetrics(cfg.Registry)
	store := &deadletter.Store{Redis: rdb, Prefix: cfg.KeyPrefix}
	w := &Worker{
		cfg:       cfg,
		rdb:       rdb,
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		halts:     &admin.Halts{Redis: rdb, Prefix: cfg.KeyPrefix},
		metrics:   m,
		log:       cfg.Logger.With().Str("component", "worker").Logger(),
		api:       api,
	}
	served, pending, err := startQueues(rdb, w.inspector, cfg.KeyPrefix, cfg.Queues, cfg.Shards, w.log)
	if err != nil {
		return nil, err
	}
	w.served, w.pendingShards = served, pending
	queues := w.queues()
	batches := &batch.Store{Redis: rdb, Prefix: cfg.KeyPrefix}
	w.sweeper = &deadletter.Sweeper{Store: store, Inspector: w.inspector, Queues: queues, Now: cfg.Now, Batches: batches}
	w.h = &handler{
		cfg:     cfg,
		api:     api,
		state:   &stateStore{rdb: rdb, prefix: cfg.KeyPrefix, ttl: stateTTL},
		dead:    store,
		halt:    newHaltState(cfg.HaltProbeMin, cfg.HaltProbeMax, cfg.Now),
		metrics: m,
		log:     w.log,
		stop:    make(chan struct{}),
		now:     cfg.Now,
	}
	// The lock outlives every call it guards: the limiter wait, the call,
	// and the ambiguity check.
	w.h.fence = &fence{rdb: rdb, prefix: cfg.KeyPrefix, lockTTL: cfg.LimitWait + 2*callTimeout + 5*time.Second, stateTTL: stateTTL}
	w.h.batches = batches
	w.h.marker = func(ctx context.Context, id string, line int, outcome, code, msg, requestID string) error {
		return batches.Mark(ctx, id, line, batch.RowState{Outcome: outcome, Code: code, Message: msg, RequestID: requestID})
	}
	// The configured rate until the limiter reads the shared one.
	m.LimitRate.Set(cfg.QPS)
	if cfg.QPS > 0 {
		w.h.limit = newLimiter(rdb, cfg.KeyPrefix, cfg.QPS, cfg.Now, rateReporter(m.LimitRate, w.log, cfg.QPS))
		w.h.limit.spreadWindow = cfg.ThrottleWindow
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(deadLetterCollector(store))
	}
	w.srv = w.newServer(w.served)
	return w, nil
}

// newServer returns an asynq server of the worker's settings on queues.
func (w *Worker) newServer(queues map[string]int) *asynq.Server {
	cfg := w.cfg
	return asynq.NewServerFromRedisClient(w.rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queues,
		RetryDelayFunc:           retryDelay,
		IsFailure:                isFailure,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		Logger:                   asynqLogger{cfg.Logger.With().Str("component", "asynq").Logger()},
		LogLevel:                 asynqLogLevel(cfg.Logger.GetLevel()),
	})
}

// queueWatch is how often a worker reads the split of its queues again.
const queueWatch = 5 * time.Second

// watchQueues follows the split of the worker's queues in Redis (see
// servedQueues): when the queues it should serve change (another worker
// split a queue, or a shard of an earlier split holds jobs), it starts an
// asynq server on the new set and shuts the old one down, which lets the
// jobs it runs finish. Meanwhile both run: up to twice the concurrency,
// for as long as the old server's jobs take.
func (w *Worker) watchQueues(ctx context.Context) {
	log := zerolog.Nop()
	if w.pendingShards != nil {
		log = w.log
	}
	want, err := servedQueues(ctx, w.rdb, w.inspector, w.cfg.KeyPrefix, w.cfg.Queues, w.pendingShards, log)
	var se settingError
	switch {
	case errors.As(err, &se):
		w.log.Error().Err(err).Msg("WORKER_SHARDS not applied; serving the queues as split in Redis")
		w.pendingShards = nil
		return
	case err != nil:
		if ctx.Err() == nil {
			w.log.Debug().Err(err).Msg("cannot read the split of the queues")
		}
		return
	}
	w.pendingShards = nil
	w.srvMu.Lock()
	if w.stopping || maps.Equal(want, w.served) {
		w.srvMu.Unlock()
		return
	}
	srv := w.newServer(want)
	if err := srv.Start(asynq.HandlerFunc(w.h.ProcessTask)); err != nil {
		w.srvMu.Unlock()
		w.log.Warn().Err(err).Msg("cannot serve the queues as now split")
		return
	}
	old := w.srv
	w.srv, w.served = srv, want
	w.srvMu.Unlock()
	w.log.Info().Interface("queues", want).Msg("serving the queues as now split in Redis; the jobs of the earlier set finish")
	old.Shutdown()
}

// Queues returns the queues the worker serves, with their asynq weights:
// Config.Queues, with each split queue's shards (see Config.Shards).
func (w *Worker) Queues() map[string]int {
	w.srvMu.Lock()
	defer w.srvMu.Unlock()
	return maps.Clone(w.served)
}

// Inspector returns the asynq inspector on the worker's Redis.
func (w *Worker) Inspector() *asynq.Inspector { return w.inspector }

// Start starts processing and the background loops.
func (w *Worker) Start() error {
	if err := w.srv.Start(asynq.HandlerFunc(w.h.ProcessTask)); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	if n, err := w.halts.ProbeRequests(ctx); err == nil {
		w.probeSeen = n
	}
	w.loop(ctx, w.cfg.SweepInterval, w.sweep)
	w.loop(ctx, queueWatch, w.watchQueues)
	w.loop(ctx, 2*time.Second, w.reportHalt)
	w.loop(ctx, time.Second, w.watchRedis)
	w.loop(ctx, 500*time.Millisecond, w.watchHalt)
	w.loops.Add(1)
	go func() {
		defer w.loops.Done()
		// A worker starts fresh: jobs that a halted worker (this one before
		// a restart, or one gone) put off to its probe time run now.
		if n, err := w.control().RunHalted(ctx, w.queues()...); err != nil && ctx.Err() == nil {
			w.log.Warn().Err(err).Msg("jobs put off by an earlier halt not released")
		} else if n > 0 {
			w.log.Info().Int("jobs", n).Msg("released jobs put off by an earlier halt")
		}
	}()
	return nil
}

func (w *Worker) control() *admin.Control {
	return &admin.Control{Inspector: w.inspector, Halts: w.halts}
}

func (w *Worker) queues() []string {
	return slices.Sorted(maps.Keys(w.Queues()))
}

// credentialProbe is the binding the credential check reads: none has
// this SubsId, so a business answer (isv.SUBS_NOT_EXIST, say) proves that
// the request's signature was accepted.
var credentialProbe = dypls.Binding{PoolKey: "FC100000000000000", SubsId: "1000000000000000", PhoneNoX: "17000000000"}

// watchHalt checks the credentials until they work, probes a halt by the
// credentials with the same cheap query (no job needed), and probes at once
// when an operator asks (enqueue queue probe).
func (w *Worker) watchHalt(ctx context.Context) {
	if n, err := w.halts.ProbeRequests(ctx); err == nil && n != w.probeSeen {
		w.probeSeen = n
		if w.h.halt.probeNow() {
			w.log.Info().Msg("an operator asked for a probe: probing now")
			if _, err := w.control().RunHalted(ctx, w.queues()...); err != nil && ctx.Err() == nil {
				w.log.Warn().Err(err).Msg("jobs put off by the halt not released")
			}
		}
		w.nextCheck = time.Time{}
	}
	info := w.Halt()
	switch {
	case info.Halted && credentialCode(info.Code):
		if w.h.halt.tryProbe() {
			w.checkCredentials(ctx, true)
		}
	case !info.Halted && !w.h.verified.Load() && !w.cfg.Now().Before(w.nextCheck):
		w.checkCredentials(ctx, false)
	}
}

// checkCredentials makes one signed QuerySubscriptionDetail call of a
// binding that does not exist. A business answer proves the credentials;
// an account-wide one halts the worker (or keeps it halted, when probe).
func (w *Worker) checkCredentials(ctx context.Context, probe bool) {
	_, res, err := w.api.QuerySubscriptionDetail(ctx, credentialProbe)
	w.h.observe("QuerySubscriptionDetail", res, err)
	de := asAPIError(err)
	log := w.log
	note := func(s string) { w.lastCheck.Store(&s) }
	switch {
	case de == nil || de.Class == dypls.Permanent || de.Class == dypls.Throttled:
		// As for an update (see call): only a signed request gets a
		// business or throttling answer.
		w.h.verified.Store(true)
		code := dypls.CodeOK
		if de != nil {
			code = de.Code
		}
		note("answered " + code)
		if probe && w.h.halt.resolve(true) {
			log.Info().Str("probe", "QuerySubscriptionDetail").Str("result", code).Msg("halt ended: the credentials work again, resuming calls")
		} else if !probe {
			log.Info().Str("result", code).Msg("credentials verified by a signed call")
		}
	case de.Class == dypls.Systemic:
		w.h.halt.trip(de.Code, mask.Text(de.Message), probe)
		note(de.Code)
		info := w.Halt()
		ev := log.Error()
		if probe {
			ev = log.Warn().Str("probe", "QuerySubscriptionDetail")
		}
		ev.Str("result", de.Code).Str("hint", info.Hint).Time("next_probe", info.NextProbe).
			Str("detail", mask.Text(de.Message)).Msg("credentials refused: halted")
	default:
		// No verdict (unreachable, 5xx): ask again soon.
		if probe {
			w.h.halt.resolve(false)
		}
		note("no answer: " + de.Code)
		w.nextCheck = w.cfg.Now().Add(5 * time.Second)
		ev := log.Warn().Str("result", de.Code)
		if probe {
			ev = ev.Str("probe", "QuerySubscriptionDetail").Time("next_probe", w.Halt().NextProbe)
		}
		ev.Msg("credential check got no verdict; trying again")
	}
}

// Shutdown stops fetching, lets in-flight calls finish (jobs waiting in a
// halt go back to the queue at once), and stops the background loops.
func (w *Worker) Shutdown() {
	w.stopOnce.Do(func() {
		close(w.h.stop)
		w.srvMu.Lock()
		w.stopping = true
		srv := w.srv
		w.srvMu.Unlock()
		srv.Shutdown()
		if w.cancel != nil {
			w.cancel()
		}
		w.loops.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = w.halts.Clear(ctx, w.cfg.WorkerID)
	})
}

// Halt returns the worker's halt state.
func (w *Worker) Halt() HaltInfo { return w.h.halt.info() }

// Ready returns nil when the worker can make progress: Redis answers and
// no account-wide code has halted it. Otherwise it returns a
// [*NotReadyError] saying why.
func (w *Worker) Ready(ctx context.Context) error {
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return &NotReadyError{Reason: "redis unreachable", Err: fmt.Errorf("redis unreachable: %s", mask.Text(err.Error()))}
	}
	if info := w.Halt(); info.Halted {
		return &NotReadyError{Reason: "halted: " + info.Code + ": " + info.Hint, Err: info.Err()}
	}
	if !w.h.verified.Load() {
		last := "none yet"
		if p := w.lastCheck.Load(); p != nil {
			last = *p
		}
		return &NotReadyError{Reason: "credentials not verified yet",
			Err: fmt.Errorf("credentials not verified yet: no signed call has been answered (last check: %s)", last)}
	}
	return nil
}

// NotReadyError is why a worker is not ready. Reason is short and safe for
// anyone to read: "redis unreachable", or "halted: " and the code. Err is
// the detail (a halt's message may hold the AccessKeyId, the PoolKey and a
// SubsId), for operators only.
type NotReadyError struct {
	Reason string
	Err    error
}

// Error returns the detail.
func (e *NotReadyError) Error() string { return e.Err.Error() }

// Unwrap returns the detail.
func (e *NotReadyError) Unwrap() error { return e.Err }

// PublicReason returns Reason: the monitor shows it to callers without
// credentials.
func (e *NotReadyError) PublicReason() string { return e.Reason }

func (w *Worker) loop(ctx context.Context, every time.Duration, fn func(context.Context)) {
	w.loops.Add(1)
	go func() {
		defer w.loops.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			fn(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (w *Worker) sweep(ctx context.Context) {
	w.sweeper.Queues = w.queues()
	n, err := w.sweeper.Sweep(ctx)
	w.metrics.DeadCreated.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		redisEvent(w.log, err).Err(err).Msg("dead-letter sweep failed")
		return
	}
	if n > 0 {
		w.log.Info().Int("records", n).Msg("dead-letter sweep wrote records for archived jobs")
	}
}

func (w *Worker) reportHalt(ctx context.Context) {
	info := w.Halt()
	if info.Code != w.haltCode {
		// The ended halt's series drops to 0; it does not vanish.
		w.metrics.Halted.WithLabelValues(w.haltCode).Set(0)
		w.haltCode = info.Code
	}
	if !info.Halted {
		w.metrics.Halted.WithLabelValues("").Set(0)
		w.metrics.HaltedSince.Set(0)
		// Clear the report once, after a halt ends, not on every tick.
		if w.haltReported && w.halts.Clear(ctx, w.cfg.WorkerID) == nil {
			w.haltReported = false
		}
		return
	}
	w.metrics.Halted.WithLabelValues(info.Code).Set(1)
	w.metrics.HaltedSince.Set(float64(info.Since.UnixNano()) / 1e9)
	host, _ := os.Hostname()
	err := w.halts.Report(ctx, admin.Halt{Worker: w.cfg.WorkerID, Host: host, PID: os.Getpid(), Code: info.Code,
		Message: info.Message, Hint: info.Hint, Since: info.Since, UpdatedAt: w.cfg.Now(), NextProbe: info.NextProbe})
	if err != nil && ctx.Err() == nil {
		w.log.Warn().Err(err).Msg("halt not reported to Redis")
	}
	w.haltReported = true
}

// rateReporter returns the limiter's callback: it sets the gauge on every
// read of the shared rate and logs a change of it at debug level.
func rateReporter(g prometheus.Gauge, log zerolog.Logger, start float64) func(float64) {
	var mu sync.Mutex
	last := start
	return func(r float64) {
		g.Set(r)
		mu.Lock()
		changed := math.Abs(r-last) >= max(0.5, last*0.05) // recovery moves it a little on every read
		if changed {
			last = r
		}
		mu.Unlock()
		if changed {
			log.Debug().Float64("rate_per_second", math.Round(r*10)/10).Msg("shared rate limit changed")
		}
	}
}

// watchRedis pings Redis and logs one line when it stops answering and one
// when it answers again; the many errors of asynq and go-redis meanwhile go
// to the debug log.
func (w *Worker) watchRedis(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	err := w.rdb.Ping(pctx).Err()
	cancel()
	if ctx.Err() != nil {
		return
	}
	switch {
	case err != nil && w.redisDown.IsZero():
		w.redisDown = w.cfg.Now()
		w.log.Warn().Str("error", mask.Text(err.Error())).Msg("Redis unreachable: jobs wait until it answers")
	case err == nil && !w.redisDown.IsZero():
		w.log.Info().Int64("down_ms", w.cfg.Now().Sub(w.redisDown).Milliseconds()).Msg("Redis answers again")
		w.redisDown = time.Time{}
	}
}

func asynqLogLevel(l zerolog.Level) asynq.LogLevel {
	switch {
	case l <= zerolog.InfoLevel:
		// asynq's debug level logs every empty poll.
		return asynq.InfoLevel
	case l == zerolog.WarnLevel:
		return asynq.WarnLevel
	default:
		return asynq.ErrorLevel
	}
}

// deadLetterCollector exposes the dead-letter count and the age of the
// oldest record, read at scrape time.
func deadLetterCollector(s *deadletter.Store) prometheus.Collector {
	return &dlqCollector{s: s,
		count:  prometheus.NewDesc("dyplsq_dead_letters", "Dead-letter records kept (never trimmed silently).", nil, nil),
		oldest: prometheus.NewDesc("dyplsq_dead_letter_oldest_age_seconds", "Age of the oldest dead-letter record (0 when none).", nil, nil),
	}
}

type dlqCollector struct {
	s             *deadletter.Store
	count, oldest *prometheus.Desc
}

func (c *dlqCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.count; ch <- c.oldest }

func (c *dlqCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.s.Count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.count, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n))
	age := 0.0
	if t, ok, err := c.s.Oldest(ctx); err == nil && ok {
		age = time.Since(t).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
