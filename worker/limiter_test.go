package worker

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/tasks"
)

// skewed returns a clock off by d from this machine's.
func skewed(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

// TestLimiterIgnoresWorkerClocks: the shared rate follows Redis's clock, so
// a worker whose clock is ten minutes fast or slow cuts the rate like any
// other, and the fleet's rate then recovers at the same pace.
func TestLimiterIgnoresWorkerClocks(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	const cap = 1000.0
	for _, skew := range []time.Duration{10 * time.Minute, -10 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			prefix := redistest.Namespace(t)
			t.Cleanup(func() { rdb.Del(context.Background(), prefix+":limit:UpdateSubscription") })
			off := newLimiter(rdb, prefix, cap, skewed(skew), nil)
			// A fresh limiter for each read, so that no local cache hides
			// the shared state.
			read := func() float64 {
				t.Helper()
				r, err := newLimiter(rdb, prefix, cap, time.Now, nil).current(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			if err := off.throttled(ctx); err != nil {
				t.Fatal(err)
			}
			cut := read()
			// A slow worker's cut used to be undone at once: the others saw
			// ten minutes of recovery since it.
			if cut > 0.98*cap {
				t.Fatalf("after a cut by a worker %v off: shared rate %.1f, want about %.0f", skew, cut, 0.97*cap)
			}
			time.Sleep(1200 * time.Millisecond)
			// A fast worker's cut used to freeze the rate: the others saw
			// no time pass since it.
			if got, want := read(), cut*(1+0.01); got < want {
				t.Errorf("1.2 s after a cut by a worker %v off: shared rate %.2f, want at least %.2f (1 %%/s recovery)", skew, got, want)
			}
			// And it used to block every other worker's cut for ten minutes.
			fair := newLimiter(rdb, prefix, cap, time.Now, nil)
			if _, err := fair.current(ctx); err != nil {
				t.Fatal(err)
			}
			if err := fair.throttled(ctx); err != nil {
				t.Fatal(err)
			}
			if got := read(); got > 0.99*cut {
				t.Errorf("a cut by a worker on time after the window: shared rate %.1f, want below %.1f", got, 0.99*cut)
			}
		})
	}
}

// onKey is a go-redis hook that hands every command naming key to do,
// which runs it (next) or not, as Redis would see it; other commands pass
// through.
type onKey struct {
	key string
	do  func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error
}

func (h onKey) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h onKey) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if slices.ContainsFunc(cmd.Args(), func(a any) bool { s, ok := a.(string); return ok && s == h.key }) {
			return h.do(ctx, cmd, next)
		}
		return next(ctx, cmd)
	}
}
func (h onKey) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestLimiterSharesOneFetchAmongWaitingJobs: jobs waiting for a token at
// once are served by one script call for all of them, the shared rate
// still holds across two workers, and no token outlives its moment.
func TestLimiterSharesOneFetchAmongWaitingJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := redistest.Namespace(t)
	const qps, jobs, run = 400.0, 40, 2 * time.Second
	var scripts atomic.Int64 // calls on the bucket, as Redis receives them
	counter := onKey{key: limitGCRAKey(prefix), do: func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		scripts.Add(1)
		return next(ctx, cmd)
	}}
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 2 { // two workers, a Redis client and a limiter each
		rdb := redistest.Client(t)
		rdb.AddHook(counter)
		l := newLimiter(rdb, prefix, qps, time.Now, nil)
		t.Cleanup(func() { rdb.Del(context.Background(), counter.key, tasks.LimitKey(prefix)) })
		for range jobs / 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for end := time.Now().Add(run); time.Now().Before(end); {
					ok, _, _, err := l.wait(ctx, time.Second, nil)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						granted.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	// The bucket holds qps/20 tokens at the start; the goroutines start
	// and stop within a few tens of ms of each other.
	if g, most := granted.Load(), int64(qps*(run.Seconds()+0.1)+qps/20); g > most {
		t.Errorf("%d tokens granted in %s at %.0f/s, want at most %d", g, run, qps, most)
	} else if least := int64(0.4 * qps * run.Seconds()); g < least {
		// (Loose: under -race on a loaded machine the goroutines run late.)
		t.Errorf("%d tokens granted in %s at %.0f/s, want at least %d", g, run, qps, least)
	}
	// Each job asking for itself made about 36 calls per token here.
	if calls, g := scripts.Load(), granted.Load(); calls > g {
		t.Errorf("%d script calls on the bucket for %d tokens, want at most one per token", calls, g)
	}
	t.Logf("%d tokens, %d script calls on the bucket", granted.Load(), scripts.Load())
}

// TestLimiterLowRates: at rates where the bucket holds a single token the
// fleet still gets its rate (a rounding error refused a full bucket of one
// token, and a partial grant was charged more than it handed out).
func TestLimiterLowRates(t *testing.T) {
	t.Parallel()
	for _, qps := range []float64{1, 3, 5, 7, 12, 15, 33, 39, 50} {
		t.Run(strconv.FormatFloat(qps, 'f', -1, 64), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			prefix := redistest.Namespace(t)
			rdb := redistest.Client(t)
			t.Cleanup(func() { rdb.Del(context.Background(), limitGCRAKey(prefix), tasks.LimitKey(prefix)) })
			l := newLimiter(rdb, prefix, qps, time.Now, nil)
			const run = 2 * time.Second
			var granted atomic.Int64
			var wg sync.WaitGroup
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for end := time.Now().Add(run); time.Now().Before(end); {
						ok, retry, _, err := l.wait(ctx, time.Second, nil)
						if err != nil {
							t.Error(err)
							return
						}
						if ok {
							granted.Add(1)
						} else {
							time.Sleep(retry)
						}
					}
				}()
			}
			wg.Wait()
			// The first tokens come at once (the bucket's burst), then one
			// per 1/qps; the last waiters may overrun the window by 1 s.
			// A loaded machine may leave the waiters unscheduled for a
			// while, so the floor is half the rate: the stall this guards
			// against granted none.
			burst := max(1, int64(qps/20))
			least, most := max(1, int64(qps*run.Seconds()/2)), int64(qps*(run.Seconds()+1))+burst
			if g := granted.Load(); g < least || g > most {
				t.Errorf("%d tokens in %s at %v/s, want %d to %d", g, run, qps, least, most)
			}
		})
	}
}

// TestLimiterSharesAFailedFetch: when the fetch fails slowly, the jobs that
// waited for it get its error at once, instead of each trying again in
// turn and waiting out its own timeout.
func TestLimiterSharesAFailedFetch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := redistest.Namespace(t)
	rdb := redistest.Client(t)
	// Every call on the bucket fails after 300 ms, as a Redis that stopped
	// answering does.
	var fetches atomic.Int64
	rdb.AddHook(onKey{key: limitGCRAKey(prefix), do: func(_ context.Context, cmd redis.Cmder, _ redis.ProcessHook) error {
		fetches.Add(1)
		time.Sleep(300 * time.Millisecond)
		err := errors.New("i/o timeout (injected)")
		cmd.SetErr(err)
		return err
	}})
	l := newLimiter(rdb, prefix, 1000, time.Now, nil)
	t.Cleanup(func() { rdb.Del(context.Background(), tasks.LimitKey(prefix)) })
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, _, err := l.wait(ctx, 5*time.Second, nil); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("10 jobs waited %s for a fetch that fails after 300 ms (%d fetches)", took, fetches.Load())
	}
	if failed.Load() != 10 {
		t.Errorf("%d of 10 jobs saw the error", failed.Load())
	}
}

// TestLimiterOneJobsEndDoesNotFailTheOthers: a fetch cut short by the end
// of the job that ran it is fetched again for the jobs that waited for it,
// which get their tokens, not its error.
func TestLimiterOneJobsEndDoesNotFailTheOthers(t *testing.T) {
	t.Parallel()
	prefix := redistest.Namespace(t)
	rdb := redistest.Client(t)
	// The first call on the bucket is held until its context ends.
	var held atomic.Bool
	rdb.AddHook(onKey{key: limitGCRAKey(prefix), do: func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
		if !held.CompareAndSwap(false, true) {
			return next(ctx, cmd)
		}
		<-ctx.Done()
		cmd.SetErr(ctx.Err())
		return ctx.Err()
	}})
	l := newLimiter(rdb, prefix, 1000, time.Now, nil)
	t.Cleanup(func() { rdb.Del(context.Background(), limitGCRAKey(prefix), tasks.LimitKey(prefix)) })
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, _, _, err := l.wait(short, 5*time.Second, nil)
		first <- err
	}()
	time.Sleep(50 * time.Millisecond) // the first job's fetch is held
	ok, _, _, err := l.wait(context.Background(), 5*time.Second, nil)
	if err != nil || !ok {
		t.Fatalf("a job waiting for another job's fetch that its context cut short: ok %v, err %v; want a token", ok, err)
	}
	if err := <-first; !canceled(err) {
		t.Errorf("the job whose context ended got %v, want its context's error", err)
	}
}
