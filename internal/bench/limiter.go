package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// The shared adaptive limit against a provider quota: two
// workers, each configured well above the simulator's quota, must settle
// at a goodput of at least 95 % of the quota with throttled answers under
// 2 % of calls after the first seconds.
const (
	limiterQuota       = 1000.0 // simulator UpdateSubscription quota, calls/s (burst: the default, quota/10)
	limiterWorkerQPS   = 2000.0 // DYPLS_QPS of each worker: twice the quota, on purpose
	limiterWorkers     = 2
	limiterConcurrency = 50
	limiterMaxJobs     = 25000           // about 25 s at the quota
	limiterSteadyFrom  = 5 * time.Second // the steady window starts here
	limiterShortJobs   = 10000           // fewer jobs: too short for a steady window, the whole run counts
	limiterSample      = time.Second
)

func limiterScenarios() []Scenario {
	return []Scenario{{
		Name:    "dyplsq/limiter/quota1000",
		Group:   "dyplsq/limiter",
		Figure:  "goodput of 2 dyplsq workers at DYPLS_QPS 2000 vs a sim quota of 1000/s, from 5 s",
		Unit:    "% of quota",
		Timeout: 2 * time.Minute,
		Run:     runLimiter,
	}}
}

// limiterPoint is the simulator's cumulative UpdateSubscription counts at
// one moment, with the queue's state and the shared rate then.
type limiterPoint struct {
	at                   time.Duration // since the workers started
	ok, throttled, other int
	pending, completed   int64
	rate                 float64 // dyplsq_limiter_rate_per_second of worker 1
}

func sampleLimiter(ctx context.Context, env *Env, sim *dyplsim.Sim, queue string, reg *prometheus.Registry, start time.Time) (limiterPoint, error) {
	p := limiterPoint{at: time.Since(start)}
	for code, n := range sim.Stats().Calls["UpdateSubscription"] {
		switch {
		case code == "OK":
			p.ok += n
		case dypls.Classify(code) == dypls.Throttled:
			p.throttled += n
		default:
			p.other += n
		}
	}
	var err error
	p.pending, p.completed, _, err = env.queueCounts(ctx, queue)
	p.rate = gaugeValue(reg, "dyplsq_limiter_rate_per_second")
	return p, err
}

// gaugeValue returns the value of the gauge named name in reg (0 if none).
func gaugeValue(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// runLimiter pre-enqueues min(N, 25 000) jobs on distinct seeded bindings,
// starts a simulator with a quota of 1000/s (gateway answer
// Throttling.User) and two workers (own Redis and API clients, separate
// WorkerIDs, one KeyPrefix, DYPLS_QPS 2000 each, concurrency 50, every
// other setting the production default), and samples the simulator's
// answers every second until every job completed. The figure is the OK
// rate over the steady window as a percentage of the quota.
func runLimiter(ctx context.Context, env *Env) (Result, error) {
	const name = "dyplsq/limiter/quota1000"
	jobs := min(env.N, limiterMaxJobs)
	queue, prefix := env.Queue("limiter"), keyPrefix("limiter")
	defer env.dropPrefix(prefix)
	if err := env.enqueueUpdates(ctx, queue, prefix, jobs, preloadGoroutines); err != nil {
		return Result{}, fmt.Errorf("pre-enqueue: %w", err)
	}
	sim, addr, stopSim, err := startSim(dyplsim.Config{Seed: jobs, QPS: limiterQuota})
	if err != nil {
		return Result{}, err
	}
	defer stopSim()

	fleet := &limiterFleet{}
	defer fleet.close()
	if err := fleet.add(env, addr, queue, prefix); err != nil {
		return Result{}, err
	}

	start := time.Now()
	for _, w := range fleet.workers {
		if err := w.Start(); err != nil {
			return Result{}, fmt.Errorf("start worker: %w", err)
		}
	}
	points, end, err := pollLimiter(ctx, env, sim, queue, fleet.regs[0], jobs, start)
	if err != nil {
		return Result{}, err
	}
	elapsed := end.Sub(start)
	fleet.stop()
	if st := sim.Stats(); st.Applied != jobs {
		return Result{}, fmt.Errorf("simulator applied %d updates for %d jobs (%v)", st.Applied, jobs, st.Calls)
	}

	last := points[len(points)-1]
	env.Logf("%-22s whole run: %d jobs in %s = %.0f OK/s (%.1f %% of quota); %d throttled of %d calls (%.2f %%), %d other answers",
		name, jobs, elapsed.Round(time.Millisecond), float64(last.ok)/elapsed.Seconds(),
		100*float64(last.ok)/elapsed.Seconds()/limiterQuota, last.throttled, last.ok+last.throttled+last.other,
		pct(last.throttled, last.ok+last.throttled+last.other), last.other)

	w, err := steadyWindow(points, jobs < limiterShortJobs, elapsed)
	if err != nil {
		return Result{}, err
	}
	goodput := float64(w.ok) / w.window.Seconds()
	what := "steady window"
	if w.short {
		what = fmt.Sprintf("short run (%d jobs < %d): whole run", jobs, limiterShortJobs)
	}
	env.Logf("%-22s %s %.1fs–%.1fs: goodput %.0f OK/s = %.1f %% of quota (want ≥ 95 %%); throttled %d of %d calls = %.2f %% (want < 2 %%)",
		name, what, w.from.Seconds(), w.to.Seconds(), goodput, 100*goodput/limiterQuota, w.thr, w.calls, pct(w.thr, w.calls))
	return Result{Value: 100 * goodput / limiterQuota, Count: jobs, Elapsed: elapsed}, nil
}

// limiterFleet is the benchmark's workers, their metric registries, and
// what closes their clients.
type limiterFleet struct {
	workers []*worker.Worker
	regs    []*prometheus.Registry
	closers []func()
}

// add creates the limiterWorkers workers serving queue, each with its own
// API client to the simulator at addr and its own Redis client.
func (f *limiterFleet) add(env *Env, addr, queue, prefix string) error {
	for i := 1; i <= limiterWorkers; i++ {
		api, err := newAPI(addr)
		if err != nil {
			return err
		}
		rdb := env.newRedis()
		f.closers = append(f.closers, api.Close, func() { _ = rdb.Close() })
		reg := prometheus.NewRegistry()
		w, err := worker.New(worker.Config{
			Queues:      map[string]int{queue: 1},
			Concurrency: limiterConcurrency,
			QPS:         limiterWorkerQPS,
			KeyPrefix:   prefix,
			WorkerID:    fmt.Sprintf("%s-w%d", prefix, i),
			Logger:      env.benchLogger(),
			Registry:    reg,
		}, rdb, api)
		if err != nil {
			return err
		}
		f.workers, f.regs = append(f.workers, w), append(f.regs, reg)
	}
	return nil
}

// stop shuts the workers down.
func (f *limiterFleet) stop() {
	for _, w := range f.workers {
		w.Shutdown()
	}
	f.workers = nil
}

// close stops the workers and closes their clients.
func (f *limiterFleet) close() {
	f.stop()
	for _, c := range f.closers {
		c()
	}
}

// pollLimiter waits until the jobs on queue are completed, sampling the
// limiter every limiterSample, and returns the samples (the first one
// zero) and when the last job completed.
func pollLimiter(ctx context.Context, env *Env, sim *dyplsim.Sim, queue string, reg *prometheus.Registry, jobs int, start time.Time) ([]limiterPoint, time.Time, error) {
	points := []limiterPoint{{}}
	poll := time.NewTicker(completionPoll)
	defer poll.Stop()
	next := start.Add(limiterSample)
	var end time.Time
	for end.IsZero() {
		select {
		case <-ctx.Done():
			last := points[len(points)-1]
			return nil, end, fmt.Errorf("%d of %d jobs completed after %s: %w", last.completed, jobs, time.Since(start).Round(time.Second), ctx.Err())
		case <-poll.C:
		}
		_, completed, archived, err := env.queueCounts(ctx, queue)
		if err != nil {
			return nil, end, err
		}
		if archived > 0 {
			return nil, end, fmt.Errorf("%d job(s) archived (dead); %d of %d completed", archived, completed, jobs)
		}
		done := completed >= int64(jobs)
		if done {
			end = time.Now()
		}
		if done || !time.Now().Before(next) {
			p, err := sampleLimiter(ctx, env, sim, queue, reg, start)
			if err != nil {
				return nil, end, err
			}
			if done {
				p.at = end.Sub(start)
			}
			prev := points[len(points)-1]
			points = append(points, p)
			env.Logf("%s", formatLimiterPoint(prev, p))
			next = next.Add(limiterSample)
		}
	}
	return points, end, nil
}

// limiterWindow is the part of a run the limiter benchmark judges.
type limiterWindow struct {
	ok, thr, calls int
	window         time.Duration
	from, to       time.Duration
	short          bool // a short run: the whole run is judged
}

// steadyWindow sums the samples of the steady window: whole samples that
// start at limiterSteadyFrom or later and end with jobs still pending (the
// workers had work the whole second). A short run is judged whole.
func steadyWindow(points []limiterPoint, short bool, elapsed time.Duration) (limiterWindow, error) {
	w := limiterWindow{short: short}
	if short {
		last := points[len(points)-1]
		w.ok, w.thr, w.calls, w.window, w.from, w.to = last.ok, last.throttled, last.ok+last.throttled+last.other, elapsed, 0, elapsed
		return w, nil
	}
	for i := 1; i < len(points); i++ {
		a, b := points[i-1], points[i]
		if a.at < limiterSteadyFrom || b.pending == 0 {
			continue
		}
		if w.window == 0 {
			w.from = a.at
		}
		w.to = b.at
		w.ok += b.ok - a.ok
		w.thr += b.throttled - a.throttled
		w.calls += (b.ok + b.throttled + b.other) - (a.ok + a.throttled + a.other)
		w.window += b.at - a.at
	}
	if w.window == 0 {
		return w, fmt.Errorf("no steady window: the queue emptied before %s", limiterSteadyFrom+limiterSample)
	}
	return w, nil
}

// formatLimiterPoint describes the second from a to b.
func formatLimiterPoint(a, b limiterPoint) string {
	d := (b.at - a.at).Seconds()
	calls := (b.ok + b.throttled + b.other) - (a.ok + a.throttled + a.other)
	var extra strings.Builder
	if b.other > a.other {
		fmt.Fprintf(&extra, "  other %d", b.other-a.other)
	}
	return fmt.Sprintf("limiter t=%5.1fs  OK %5.0f/s  throttled %4d (%5.2f %% of %d calls)  rate %6.0f  pending %6d  completed %6d%s",
		b.at.Seconds(), float64(b.ok-a.ok)/d, b.throttled-a.throttled, pct(b.throttled-a.throttled, calls), calls,
		b.rate, b.pending, b.completed, extra.String())
}

func pct(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}
