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

	var (
		workers []*worker.Worker
		regs    []*prometheus.Registry
		closers []func()
	)
	stopWorkers := func() {
		for _, w := range workers {
			w.Shutdown()
		}
		workers = nil
	}
	defer func() {
		stopWorkers()
		for _, c := range closers {
			c()
		}
	}()
	for i := 1; i <= limiterWorkers; i++ {
		api, err := newAPI(addr)
		if err != nil {
			return Result{}, err
		}
		rdb := env.newRedis()
		closers = append(closers, api.Close, func() { _ = rdb.Close() })
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
			return Result{}, err
		}
		workers, regs = append(workers, w), append(regs, reg)
	}

	start := time.Now()
	for _, w := range workers {
		if err := w.Start(); err != nil {
			return Result{}, fmt.Errorf("start worker: %w", err)
		}
	}
	points := []limiterPoint{{}}
	poll := time.NewTicker(completionPoll)
	defer poll.Stop()
	next := start.Add(limiterSample)
	var end time.Time
	for end.IsZero() {
		select {
		case <-ctx.Done():
			last := points[len(points)-1]
			return Result{}, fmt.Errorf("%d of %d jobs completed after %s: %w", last.completed, jobs, time.Since(start).Round(time.Second), ctx.Err())
		case <-poll.C:
		}
		_, completed, archived, err := env.queueCounts(ctx, queue)
		if err != nil {
			return Result{}, err
		}
		if archived > 0 {
			return Result{}, fmt.Errorf("%d job(s) archived (dead); %d of %d completed", archived, completed, jobs)
		}
		done := completed >= int64(jobs)
		if done {
			end = time.Now()
		}
		if done || !time.Now().Before(next) {
			p, err := sampleLimiter(ctx, env, sim, queue, regs[0], start)
			if err != nil {
				return Result{}, err
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
	elapsed := end.Sub(start)
	stopWorkers()
	if st := sim.Stats(); st.Applied != jobs {
		return Result{}, fmt.Errorf("simulator applied %d updates for %d jobs (%v)", st.Applied, jobs, st.Calls)
	}

	last := points[len(points)-1]
	env.Logf("%-22s whole run: %d jobs in %s = %.0f OK/s (%.1f %% of quota); %d throttled of %d calls (%.2f %%), %d other answers",
		name, jobs, elapsed.Round(time.Millisecond), float64(last.ok)/elapsed.Seconds(),
		100*float64(last.ok)/elapsed.Seconds()/limiterQuota, last.throttled, last.ok+last.throttled+last.other,
		pct(last.throttled, last.ok+last.throttled+last.other), last.other)

	// The steady window: whole samples that start at 5 s or later and end
	// with jobs still pending (the workers had work the whole second).
	var (
		ok, thr, calls int
		window         time.Duration
		from, to       time.Duration
	)
	short := jobs < limiterShortJobs
	if short {
		ok, thr, calls, window, from, to = last.ok, last.throttled, last.ok+last.throttled+last.other, elapsed, 0, elapsed
	} else {
		for i := 1; i < len(points); i++ {
			a, b := points[i-1], points[i]
			if a.at < limiterSteadyFrom || b.pending == 0 {
				continue
			}
			if window == 0 {
				from = a.at
			}
			to = b.at
			ok += b.ok - a.ok
			thr += b.throttled - a.throttled
			calls += (b.ok + b.throttled + b.other) - (a.ok + a.throttled + a.other)
			window += b.at - a.at
		}
		if window == 0 {
			return Result{}, fmt.Errorf("no steady window: the queue emptied before %s", limiterSteadyFrom+limiterSample)
		}
	}
	goodput := float64(ok) / window.Seconds()
	what := "steady window"
	if short {
		what = fmt.Sprintf("short run (%d jobs < %d): whole run", jobs, limiterShortJobs)
	}
	env.Logf("%-22s %s %.1fs–%.1fs: goodput %.0f OK/s = %.1f %% of quota (want ≥ 95 %%); throttled %d of %d calls = %.2f %% (want < 2 %%)",
		name, what, from.Seconds(), to.Seconds(), goodput, 100*goodput/limiterQuota, thr, calls, pct(thr, calls))
	return Result{Value: 100 * goodput / limiterQuota, Count: jobs, Elapsed: elapsed}, nil
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
