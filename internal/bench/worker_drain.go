package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// drainMaxJobs caps the jobs of one worker drain repetition (min(-n, cap)),
// so that each stays well under 30 s on 2 cores.
const drainMaxJobs = 10000

// drainConcurrency is the concurrency of every worker drain scenario.
const drainConcurrency = 50

// limitedQPS is the DYPLS_QPS of dyplsq/worker-limited: far above what the
// machine can do, so the limiter never makes a job wait and the figure
// shows only its cost (Redis round trips per call).
const limitedQPS = 1e6

// The latency-bound regime: each call takes 20 ms ± 5 ms at the simulator,
// as calls to the real endpoint do, and 200 jobs run at once.
const (
	slowConcurrency = 200
	slowLatency     = 15 * time.Millisecond
	slowJitter      = 10 * time.Millisecond
)

// drainSpec is one worker drain scenario's setting.
type drainSpec struct {
	name        string
	concurrency int
	qps         float64 // dyplsq only: DYPLS_QPS; 0 means no limiter
	latency     time.Duration
	jitter      time.Duration
}

// workerDrainScenarios measures real jobs run to completion against the
// simulator (no quota) through the real SDK: the naive worker a user would
// hand-write on asynq, and dyplsq's worker without and with its shared
// rate limiter; first with an instant simulator (CPU-bound: what each job
// costs), then with calls of 20 ± 5 ms and concurrency 200 (the
// latency-bound regime of a real endpoint).
func workerDrainScenarios() []Scenario {
	naive := func(sp drainSpec) func(context.Context, *Env) (Result, error) {
		return func(ctx context.Context, env *Env) (Result, error) { return runNaiveDrain(ctx, env, sp) }
	}
	dyplsq := func(sp drainSpec) func(context.Context, *Env) (Result, error) {
		return func(ctx context.Context, env *Env) (Result, error) { return runWorkerDrain(ctx, env, sp) }
	}
	slow := func(name string, qps float64) drainSpec {
		return drainSpec{name: name, concurrency: slowConcurrency, qps: qps, latency: slowLatency, jitter: slowJitter}
	}
	return []Scenario{
		{
			Name: "naive/worker/c50", Group: "naive/worker",
			Figure: "naive asynq worker (Decode, SDK call to dyplsim), concurrency 50",
			Unit:   "tasks/s", Baseline: "asynq/drain/c50", Timeout: 90 * time.Second,
			Run: naive(drainSpec{name: "naive/worker/c50", concurrency: drainConcurrency}),
		},
		{
			Name: "dyplsq/worker/c50", Group: "dyplsq/worker",
			Figure: "dyplsq worker, no limiter, SDK calls to dyplsim, concurrency 50",
			Unit:   "tasks/s", Baseline: "naive/worker/c50", Timeout: 90 * time.Second,
			Run: dyplsq(drainSpec{name: "dyplsq/worker/c50", concurrency: drainConcurrency}),
		},
		{
			Name: "dyplsq/worker-limited/c50", Group: "dyplsq/worker-limited",
			Figure: "dyplsq worker, shared limiter at QPS 1e6 (never binding), concurrency 50",
			Unit:   "tasks/s", Baseline: "naive/worker/c50", Timeout: 90 * time.Second,
			Run: dyplsq(drainSpec{name: "dyplsq/worker-limited/c50", concurrency: drainConcurrency, qps: limitedQPS}),
		},
		{
			Name: "naive/worker-20ms/c200", Group: "naive/worker-20ms",
			Figure: "naive asynq worker, calls of 20 ± 5 ms, concurrency 200",
			Unit:   "tasks/s", Timeout: 90 * time.Second,
			Run: naive(slow("naive/worker-20ms/c200", 0)),
		},
		{
			Name: "dyplsq/worker-20ms/c200", Group: "dyplsq/worker-20ms",
			Figure: "dyplsq worker, shared limiter at QPS 1e6, calls of 20 ± 5 ms, concurrency 200",
			Unit:   "tasks/s", Baseline: "naive/worker-20ms/c200", Timeout: 90 * time.Second,
			Run: dyplsq(slow("dyplsq/worker-20ms/c200", limitedQPS)),
		},
	}
}

// drainSetup pre-enqueues min(N, drainMaxJobs) jobs (updateOutId on as many
// distinct seeded bindings, with a tasks.Producer, not timed) and starts a
// simulator without quota, with the spec's latency, seeded with those
// bindings.
type drainSetup struct {
	jobs    int
	queue   string
	prefix  string
	sim     *dyplsim.Sim
	api     *dypls.Client
	stopSim func()
}

func newDrainSetup(ctx context.Context, env *Env, sp drainSpec) (*drainSetup, error) {
	d := &drainSetup{jobs: min(env.N, drainMaxJobs), queue: env.Queue("worker"), prefix: keyPrefix("worker")}
	if err := env.enqueueUpdates(ctx, d.queue, d.prefix, d.jobs, preloadGoroutines); err != nil {
		env.dropPrefix(d.prefix)
		return nil, fmt.Errorf("pre-enqueue: %w", err)
	}
	var (
		addr string
		err  error
	)
	d.sim, addr, d.stopSim, err = startSim(dyplsim.Config{Seed: d.jobs, Latency: sp.latency, Jitter: sp.jitter})
	if err != nil {
		env.dropPrefix(d.prefix)
		return nil, err
	}
	if d.api, err = newAPI(addr); err != nil {
		d.close(env)
		return nil, err
	}
	return d, nil
}

func (d *drainSetup) close(env *Env) {
	if d.api != nil {
		d.api.Close()
	}
	d.stopSim()
	env.dropPrefix(d.prefix)
}

// runWorkerDrain times one dyplsq worker.Worker (TaskCheckInterval 10 ms
// as the asynq baseline) from Start until all jobs are completed in Redis.
func runWorkerDrain(ctx context.Context, env *Env, sp drainSpec) (Result, error) {
	d, err := newDrainSetup(ctx, env, sp)
	if err != nil {
		return Result{}, err
	}
	defer d.close(env)
	rdb := env.newRedis()
	defer rdb.Close()
	w, err := worker.New(worker.Config{
		Queues:                   map[string]int{d.queue: 1},
		Concurrency:              sp.concurrency,
		QPS:                      sp.qps,
		KeyPrefix:                d.prefix,
		WorkerID:                 d.prefix + "-w1",
		Logger:                   env.benchLogger(),
		TaskCheckInterval:        drainTaskCheckInterval,
		DelayedTaskCheckInterval: drainDelayedTaskCheckInterval,
	}, rdb, d.api)
	if err != nil {
		return Result{}, err
	}
	cpu0 := env.cpuNow(ctx)
	start := time.Now()
	if err := w.Start(); err != nil {
		return Result{}, fmt.Errorf("start worker: %w", err)
	}
	end, err := env.waitCompleted(ctx, d.queue, d.jobs)
	cpu1 := env.cpuNow(ctx)
	w.Shutdown()
	if err != nil {
		return Result{}, err
	}
	if err := env.checkApplied(sp.name, d.sim, d.jobs); err != nil {
		return Result{}, err
	}
	r := Rate(d.jobs, end.Sub(start))
	r.Also = env.logCPU(sp.name, cpu0, cpu1, d.jobs)
	return r, nil
}

// runNaiveDrain times the worker a user would write by hand: a plain
// asynq.Server (the baseline's intervals) whose handler decodes the payload
// and makes the call, from Start until all jobs are completed in Redis.
func runNaiveDrain(ctx context.Context, env *Env, sp drainSpec) (Result, error) {
	d, err := newDrainSetup(ctx, env, sp)
	if err != nil {
		return Result{}, err
	}
	defer d.close(env)
	srv := asynq.NewServer(env.AsynqOpt(), asynq.Config{
		Concurrency:              sp.concurrency,
		Queues:                   map[string]int{d.queue: 1},
		TaskCheckInterval:        drainTaskCheckInterval,
		DelayedTaskCheckInterval: drainDelayedTaskCheckInterval,
		ShutdownTimeout:          2*simCallTimeout + 5*time.Second,
		Logger:                   asynqLogger{env.Stderr},
		LogLevel:                 asynq.WarnLevel,
	})
	cpu0 := env.cpuNow(ctx)
	start := time.Now()
	if err := srv.Start(naiveHandler(d.api)); err != nil {
		return Result{}, fmt.Errorf("start asynq server: %w", err)
	}
	end, err := env.waitCompleted(ctx, d.queue, d.jobs)
	cpu1 := env.cpuNow(ctx)
	srv.Shutdown()
	if err != nil {
		return Result{}, err
	}
	if err := env.checkApplied(sp.name, d.sim, d.jobs); err != nil {
		return Result{}, err
	}
	r := Rate(d.jobs, end.Sub(start))
	r.Also = env.logCPU(sp.name, cpu0, cpu1, d.jobs)
	return r, nil
}

// naiveHandler is the straightforward handler: decode, call, no retry on a
// permanent answer, asynq's default retry otherwise.
func naiveHandler(api *dypls.Client) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		u, err := tasks.Decode(t.Payload())
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		_, err = api.UpdateSubscription(ctx, worker.UpdateOf(u))
		var de *dypls.Error
		if errors.As(err, &de) && de.Class == dypls.Permanent {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	})
}
