package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// Server settings of the drain baselines: short idle polls so an empty
// queue is noticed quickly, nothing else changed from asynq's defaults.
const (
	drainTaskCheckInterval        = 10 * time.Millisecond
	drainDelayedTaskCheckInterval = 100 * time.Millisecond
	preloadGoroutines             = 8
)

// asynqEnqueueScenarios measures bare asynq.Client.Enqueue of N tasks from
// 1, 8 and 32 goroutines sharing one client.
func asynqEnqueueScenarios() []Scenario {
	var out []Scenario
	for _, g := range []int{1, 8, 32} {
		out = append(out, Scenario{
			Name:   fmt.Sprintf("asynq/enqueue/g%d", g),
			Group:  "asynq/enqueue",
			Figure: fmt.Sprintf("bare asynq Client.Enqueue, %d %s", g, plural(g, "goroutine")),
			Unit:   "tasks/s",
			Run: func(ctx context.Context, env *Env) (Result, error) {
				return runAsynqEnqueue(ctx, env, g)
			},
		})
	}
	return out
}

func runAsynqEnqueue(ctx context.Context, env *Env, g int) (Result, error) {
	q := env.Queue("enqueue")
	payloads := env.Payloads(env.N)
	elapsed, err := env.Enqueue(ctx, q, payloads, g)
	if err != nil {
		return Result{}, err
	}
	pending, _, err := env.QueueSize(q)
	if err != nil {
		return Result{}, err
	}
	if pending != len(payloads) {
		return Result{}, fmt.Errorf("queue %s holds %d pending tasks, want %d", q, pending, len(payloads))
	}
	return Rate(len(payloads), elapsed), nil
}

// asynqDrainScenarios measures one bare asynq.Server with a no-op handler
// draining N pre-enqueued tasks at concurrency 10, 50 and 200.
func asynqDrainScenarios() []Scenario {
	var out []Scenario
	for _, c := range []int{10, 50, 200} {
		out = append(out, Scenario{
			Name:   fmt.Sprintf("asynq/drain/c%d", c),
			Group:  "asynq/drain",
			Figure: fmt.Sprintf("bare asynq no-op drain, 1 server, concurrency %d", c),
			Unit:   "tasks/s",
			Run: func(ctx context.Context, env *Env) (Result, error) {
				return runAsynqDrain(ctx, env, c)
			},
		})
	}
	return out
}

// runAsynqDrain pre-enqueues N tasks (not timed), then times from
// Server.Start to the return of the N-th handler call.
func runAsynqDrain(ctx context.Context, env *Env, concurrency int) (Result, error) {
	q := env.Queue("drain")
	n := env.N
	if _, err := env.Enqueue(ctx, q, env.Payloads(n), preloadGoroutines); err != nil {
		return Result{}, fmt.Errorf("pre-enqueue: %w", err)
	}

	var (
		handled  atomic.Int64
		done     = make(chan struct{})
		doneOnce sync.Once
		end      time.Time
	)
	handler := asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if handled.Add(1) == int64(n) {
			doneOnce.Do(func() { end = time.Now(); close(done) })
		}
		return nil
	})
	srv := asynq.NewServer(env.AsynqOpt(), asynq.Config{
		Concurrency:              concurrency,
		Queues:                   map[string]int{q: 1},
		TaskCheckInterval:        drainTaskCheckInterval,
		DelayedTaskCheckInterval: drainDelayedTaskCheckInterval,
		ShutdownTimeout:          5 * time.Second,
		Logger:                   asynqLogger{env.Stderr},
		LogLevel:                 asynq.WarnLevel,
	})
	start := time.Now()
	if err := srv.Start(handler); err != nil {
		return Result{}, fmt.Errorf("start asynq server: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	srv.Shutdown()
	select {
	case <-done:
	default:
		return Result{}, fmt.Errorf("handled %d of %d tasks: %w", handled.Load(), n, ctx.Err())
	}
	if got := handled.Load(); got != int64(n) {
		return Result{}, fmt.Errorf("handler ran %d times for %d tasks", got, n)
	}
	return Rate(n, end.Sub(start)), nil
}

// plural returns word, with an s unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
