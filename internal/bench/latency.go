package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// The latency scenarios: a steady stream of updates, each timed from the
// moment its producer starts to enqueue it until the simulator has applied
// it (its answer written), with every call taking latencySim.
const (
	latencyRate     = 200 // jobs per second
	latencyDuration = 30 * time.Second
	latencySim      = 5 * time.Millisecond
	// latencyIdleWindow is how long the Redis commands of the idle worker
	// are counted once the stream has ended.
	latencyIdleWindow = 3 * time.Second
	// latencyReps: one run holds 6,000 samples; two runs show whether the
	// machine's load moved them.
	latencyReps = 2
)

// latencyScenarios measure enqueue-to-applied latency under a steady 200
// jobs/s: the naive worker with asynq's default intervals, and dyplsq's
// worker with its defaults (the shared limiter at DYPLS_QPS's default). The
// figure is the 99th percentile; the median and the idle worker's Redis
// commands per second are extra rows.
func latencyScenarios() []Scenario {
	return []Scenario{
		{
			Name: "naive/latency/r200", Group: "latency",
			Figure: "naive asynq worker, asynq's default intervals: enqueue to applied, p99, 200 jobs/s, calls of 5 ms",
			Unit:   "ms", Timeout: latencyDuration + 60*time.Second, MaxReps: latencyReps,
			Run: func(ctx context.Context, env *Env) (Result, error) { return runLatency(ctx, env, false) },
		},
		{
			Name: "dyplsq/latency/r200", Group: "latency",
			Figure:   "dyplsq worker, its defaults: enqueue to applied, p99, 200 jobs/s, calls of 5 ms",
			Unit:     "ms",
			Baseline: "naive/latency/r200",
			Timeout:  latencyDuration + 60*time.Second,
			MaxReps:  latencyReps,
			Run:      func(ctx context.Context, env *Env) (Result, error) { return runLatency(ctx, env, true) },
		},
	}
}

// applyClock wraps the simulator's handler and notes when each job's
// update was answered OK, the job named by the number in its OutId.
type applyClock struct {
	next http.Handler
	mu   sync.Mutex
	sent []time.Time     // when the producer started to enqueue job i
	took []time.Duration // enqueue to applied; 0 while not applied
	left int
	done chan struct{}
}

func newApplyClock(next http.Handler, jobs int) *applyClock {
	return &applyClock{next: next, sent: make([]time.Time, jobs), took: make([]time.Duration, jobs),
		left: jobs, done: make(chan struct{})}
}

func (c *applyClock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := c.jobOf(r)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(sw, r)
	if i < 0 || sw.status != http.StatusOK {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < len(c.took) && c.took[i] == 0 && !c.sent[i].IsZero() {
		c.took[i] = max(now.Sub(c.sent[i]), time.Nanosecond)
		if c.left--; c.left == 0 {
			close(c.done)
		}
	}
}

// jobOf returns the job number of an UpdateSubscription request's OutId
// ("bench-N"), or -1; the body is left readable for the simulator.
func (c *applyClock) jobOf(r *http.Request) int {
	q := r.URL.Query()
	if r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, err := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if form, perr := url.ParseQuery(string(b)); err == nil && perr == nil {
			for k, v := range form {
				q[k] = append(q[k], v...)
			}
		}
	}
	if q.Get("Action") != "UpdateSubscription" {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(q.Get("OutId"), "bench-"))
	if err != nil {
		return -1
	}
	return n
}

func (c *applyClock) markSent(i int) {
	c.mu.Lock()
	c.sent[i] = time.Now()
	c.mu.Unlock()
}

// percentiles returns the median and 99th percentile of the applied jobs'
// latencies, and how many were applied.
func (c *applyClock) percentiles() (p50, p99 time.Duration, n int) {
	c.mu.Lock()
	var d []time.Duration
	for _, t := range c.took {
		if t > 0 {
			d = append(d, t)
		}
	}
	c.mu.Unlock()
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return at(0.50), at(0.99), len(d)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// latencyRun is what one latency repetition starts.
type latencyRun struct {
	jobs   int
	addr   string
	queue  string
	prefix string
	clock  *applyClock
	sim    *dyplsim.Sim
	srv    *http.Server
}

func startLatencyRun(env *Env) (*latencyRun, error) {
	jobs := min(env.N, int(latencyDuration.Seconds())*latencyRate)
	sim, err := dyplsim.New(dyplsim.Config{Seed: jobs, Latency: latencySim, RandSeed: 1})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sim.Close()
		return nil, err
	}
	l := &latencyRun{jobs: jobs, addr: ln.Addr().String(), queue: env.Queue("latency"), prefix: keyPrefix("latency"), sim: sim}
	l.clock = newApplyClock(sim, jobs)
	l.srv = &http.Server{Handler: l.clock, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = l.srv.Serve(ln) }()
	return l, nil
}

func (l *latencyRun) close(env *Env) {
	_ = l.srv.Close()
	l.sim.Close()
	env.dropPrefix(l.prefix)
}

// runLatency starts the worker, then enqueues jobs at latencyRate with a
// tasks.Producer (one at a time, on schedule, catching up when late), waits
// until every job is applied, and counts the idle worker's Redis commands.
func runLatency(ctx context.Context, env *Env, dyplsq bool) (Result, error) {
	l, err := startLatencyRun(env)
	if err != nil {
		return Result{}, err
	}
	defer l.close(env)
	stop, err := l.startWorker(env, dyplsq)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	if err := l.produce(ctx, env); err != nil {
		return Result{}, err
	}
	select {
	case <-l.clock.done:
	case <-ctx.Done():
		_, _, n := l.clock.percentiles()
		return Result{}, fmt.Errorf("%d of %d jobs applied: %w", n, l.jobs, ctx.Err())
	}
	p50, p99, n := l.clock.percentiles()
	idle, err := env.idleCommands(ctx, latencyIdleWindow)
	if err != nil {
		return Result{}, err
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	name := map[bool]string{false: "naive/latency/r200", true: "dyplsq/latency/r200"}[dyplsq]
	env.Logf("%-22s enqueue to applied: p50 %.1f ms, p99 %.1f ms over %d jobs; idle: %.0f Redis commands/s",
		name, ms(p50), ms(p99), n, idle)
	return Result{Value: ms(p99), Count: n, Elapsed: latencyDuration, Also: []Extra{
		{Name: "p50", Unit: "ms", Value: ms(p50)},
		{Name: "idle-redis-cmds", Unit: "cmds/s", Value: idle},
	}}, nil
}

// startWorker starts the worker under test and returns its stop.
func (l *latencyRun) startWorker(env *Env, dyplsq bool) (func(), error) {
	api, err := newAPI(l.addr)
	if err != nil {
		return nil, err
	}
	if !dyplsq {
		srv := asynq.NewServer(env.AsynqOpt(), asynq.Config{
			Queues: map[string]int{l.queue: 1}, Logger: asynqLogger{env.Stderr}, LogLevel: asynq.WarnLevel,
		})
		if err := srv.Start(naiveHandler(api)); err != nil {
			api.Close()
			return nil, fmt.Errorf("start asynq server: %w", err)
		}
		return func() { srv.Shutdown(); api.Close() }, nil
	}
	rdb := env.newRedis()
	w, err := worker.New(worker.Config{
		Queues: map[string]int{l.queue: 1}, QPS: worker.DefaultQPS, KeyPrefix: l.prefix,
		WorkerID: l.prefix + "-w1", Logger: env.benchLogger(),
	}, rdb, api)
	if err == nil {
		err = w.Start()
	}
	if err != nil {
		rdb.Close()
		api.Close()
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return func() { w.Shutdown(); rdb.Close(); api.Close() }, nil
}

// produce enqueues job i at start + i/latencyRate.
func (l *latencyRun) produce(ctx context.Context, env *Env) error {
	client := asynq.NewClient(env.connOpt)
	defer client.Close()
	rdb := env.newRedis()
	defer rdb.Close()
	p := &tasks.Producer{Client: client, Redis: rdb, Queue: l.queue, KeyPrefix: l.prefix}
	start := time.Now()
	for i := range l.jobs {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / latencyRate)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		l.clock.markSent(i)
		if _, err := p.Enqueue(ctx, outIDUpdate(i)); err != nil {
			return fmt.Errorf("enqueue job %d: %w", i, err)
		}
	}
	return nil
}

// idleCommands returns the Redis commands per second processed over
// window, less the INFO call that takes the first reading (an INFO's own
// answer does not count itself).
func (e *Env) idleCommands(ctx context.Context, window time.Duration) (float64, error) {
	read := func() (int64, error) {
		info, err := e.Redis.InfoMap(ctx, "stats").Result()
		if err != nil {
			return 0, err
		}
		return commandsIn(info)
	}
	a, err := read()
	if err != nil {
		return 0, err
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	b, err := read()
	if err != nil {
		return 0, err
	}
	return float64(b-a-1) / window.Seconds(), nil
}
