package worker

import (
	"context"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
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
