package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/tasks"
)

// limiter caps UpdateSubscription calls per second across every worker
// process through Redis, and adapts: throttling answers lower the shared
// rate (at most once per window, however many arrive), and the rate then
// recovers gradually towards the configured cap. A fleet configured above
// the provider's real quota settles just under it.
//
// The shared state is one Redis hash: the rate at the last change and the
// time of that change by Redis's clock; the effective rate is computed on
// read as that rate plus the recovery since, capped. The token bucket
// itself is a GCRA at the effective rate, also on Redis's clock, kept as
// go-redis/redis_rate keeps it (limitTake). The worker's own clock only paces local things: how
// often the shared rate is re-read and the share of calls throttled.
type limiter struct {
	rdb      redis.UniversalClient
	key      string // the adaptive state
	gcraKey  string // the GCRA's key (limitTake)
	cap      float64
	min      float64
	window   time.Duration // at most one cut per window
	recovery float64       // fraction of the rate regained per second
	refresh  time.Duration

	spreadKey    string        // SubsIds throttled lately, by Redis's time
	spreadWindow time.Duration // how long a throttled SubsId counts

	// The reservoir: tokens the shared bucket granted to this worker in
	// one script call for the jobs waiting here at the time and those its
	// recent rate says will come within tokenLife, good until tokensBy,
	// so that a token is either used at once or never. One fetch runs at a time (fetched closes when it ends);
	// jobs that arrive meanwhile wait for its tokens rather than each
	// calling Redis, and share its error if it fails. A fetch that found
	// the bucket empty tells every job the same retry time (emptyTill)
	// until then. These times are the process's monotonic clock.
	tokens    int
	tokensBy  time.Time
	emptyTill time.Time
	waiting   int
	fetching  *fetchCall // non-nil while a fetch runs
	cuts      int        // throttling answers so far: a fetch begun before one keeps no tokens

	mu      sync.Mutex
	rate    float64
	readAt  time.Time
	calls   [10]int // last second of local calls, 100 ms buckets
	thrott  [10]int
	slot    int64
	onRate  func(float64)
	nowFunc func() time.Time
}

// The scripts read the time from Redis (TIME), never from the worker: a
// worker whose clock is off would otherwise freeze the recovery of the
// whole fleet (a clock ahead) or undo its own cuts (a clock behind). Redis
// replicates a script's effects, not the script, so the non-deterministic
// TIME is safe on replicas and in the AOF; on Redis Cluster every call runs
// on the node holding KEYS[1], so all workers read one clock.
//
// limitRead returns the effective rate (ARGV: cap, recovery per second).
// limitCut lowers it to ARGV[3] if the last cut is older than the window
// (ARGV[4] ms) and the proposal is lower; returns the new rate.
const limitNow = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

var (
	limitRead = redis.NewScript(limitNow + `
local cap = tonumber(ARGV[1])
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate') or ARGV[1])
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
local eff = rate + tonumber(ARGV[2]) * rate * math.max(0, now - at) / 1000
if eff > cap then eff = cap end
return tostring(eff)`)
	limitCut = redis.NewScript(limitNow + `
local cap = tonumber(ARGV[1])
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate') or ARGV[1])
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
local cut = tonumber(redis.call('HGET', KEYS[1], 'cut') or '0')
local eff = rate + tonumber(ARGV[2]) * rate * math.max(0, now - at) / 1000
if eff > cap then eff = cap end
local proposal = tonumber(ARGV[3])
if now - cut < tonumber(ARGV[4]) or proposal >= eff then return tostring(eff) end
redis.call('HSET', KEYS[1], 'rate', tostring(proposal), 'at', now, 'cut', now)
redis.call('PEXPIRE', KEYS[1], 3600000)
return tostring(proposal)`)
	// limitSpread records that SubsId ARGV[1] was throttled now and
	// returns how many distinct SubsIds were throttled within the last
	// ARGV[2] ms.
	limitSpread = redis.NewScript(limitNow + `
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])`)

	// limitTake takes up to ARGV[4] tokens (ARGV: burst, rate per period,
	// period in seconds, wanted) from the GCRA at KEYS[1], whole tokens
	// only, and returns {taken, retry after in seconds}. The state is the
	// theoretical arrival time in seconds since 2017, as go-redis/
	// redis_rate stores it, so that workers still asking it for one token
	// at a time share the same bucket. Unlike its AllowAtMost, a full
	// bucket of one token is not refused for a rounding error (a
	// microsecond, TIME's resolution, is forgiven), and a partial grant is
	// charged only the whole tokens it hands out. The time is stored as a
	// number, which Redis writes at full precision.
	limitTake = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local burst, rate, period, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local interval = period / rate
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1483228800) + tonumber(t[2]) / 1000000
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local diff = now - (tat - interval * burst)
local n = math.floor((diff + 1e-6) / interval)
if n < 1 then return {0, tostring(interval - diff)} end
if n > want then n = want end
local new_tat = tat + interval * n
redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(new_tat - now))
return {n, '-1'}`)
)

// fetchCall is one fetch of tokens, which the jobs that wait for it share.
type fetchCall struct {
	done chan struct{}
	err  error
}

func newLimiter(rdb redis.UniversalClient, prefix string, qps float64, now func() time.Time, onRate func(float64)) *limiter {
	return &limiter{
		rdb: rdb,
		key: tasks.LimitKey(prefix), gcraKey: limitGCRAKey(prefix),
		spreadKey: limitSpreadKey(prefix), spreadWindow: 5 * time.Second,
		cap: qps, min: math.Max(1, qps/100), window: 300 * time.Millisecond, recovery: 0.01,
		refresh: 250 * time.Millisecond, onRate: onRate, nowFunc: now,
	}
}

// current returns the effective shared rate, read from Redis at most every
// refresh interval.
func (l *limiter) current(ctx context.Context) (float64, error) {
	l.mu.Lock()
	if now := l.nowFunc(); now.Sub(l.readAt) < l.refresh && l.rate > 0 {
		r := l.rate
		l.mu.Unlock()
		return r, nil
	}
	l.mu.Unlock()
	now := l.nowFunc()
	r, err := limitRead.Run(ctx, l.rdb, []string{l.key}, l.cap, l.recovery).Float64()
	if err != nil {
		return 0, err
	}
	l.set(r, now)
	return r, nil
}

func (l *limiter) set(r float64, at time.Time) {
	l.mu.Lock()
	l.rate, l.readAt = r, at
	l.mu.Unlock()
	if l.onRate != nil {
		l.onRate(r)
	}
}

// tokenLife is how long a token fetched for a waiting job stays good: a
// token not used by then is dropped, never saved for a burst later.
const tokenLife = 10 * time.Millisecond

// maxFetch caps the tokens one script call takes for the jobs waiting.
const maxFetch = 32

// wait takes one call's token, sleeping while the wait is short. It
// returns ok=false and the wait left when the token is further away than
// maxWait (the job goes back to the queue rather than hold its slot), or
// when the worker stops or ctx ends first. slept says it slept for the
// bucket (waiting for a fetch, one round trip, is not sleeping).
func (l *limiter) wait(ctx context.Context, maxWait time.Duration, stop <-chan struct{}) (ok bool, retryIn time.Duration, slept bool, err error) {
	deadline := l.nowFunc().Add(maxWait)
	l.mu.Lock()
	l.waiting++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}()
	for {
		got, retry, err := l.take(ctx, stop, deadline.Sub(l.nowFunc()))
		switch {
		case err != nil:
			return false, 0, slept, err
		case got:
			l.count(false)
			return true, 0, slept, nil
		case retry < 0: // gave up waiting for another job's fetch
			return false, max(0, deadline.Sub(l.nowFunc())), slept, nil
		case l.nowFunc().Add(retry).After(deadline):
			return false, retry, slept, nil
		}
		t := time.NewTimer(retry)
		slept = true
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return false, retry, slept, nil
		case <-ctx.Done():
			t.Stop()
			return false, retry, slept, nil
		}
	}
}

// take takes a token from the reservoir, or fetches tokens for the jobs
// waiting now from the shared bucket; when none is to be had it returns
// how long until one may be. While another job's fetch runs it waits for
// that fetch, at most patience, or until stop or ctx; giving up is a
// negative retry.
func (l *limiter) take(ctx context.Context, stop <-chan struct{}, patience time.Duration) (bool, time.Duration, error) {
	l.mu.Lock()
	for {
		now := time.Now() // monotonic: a clock step must not stretch a token's life
		if l.tokens > 0 && now.Before(l.tokensBy) {
			l.tokens--
			l.mu.Unlock()
			return true, 0, nil
		}
		if left := l.emptyTill.Sub(now); left > 0 {
			l.mu.Unlock()
			return false, left, nil
		}
		call := l.fetching
		if call == nil {
			break
		}
		l.mu.Unlock()
		if !waitFor(ctx, stop, call.done, patience) {
			return false, -1, nil
		}
		if call.err != nil && !(canceled(call.err) && ctx.Err() == nil) {
			return false, 0, call.err
		}
		// Tokens, a retry time, or a fetch cut short by the context of
		// the job that ran it, not this one's: look again.
		l.mu.Lock()
	}
	return l.fetchLocked(ctx)
}

// canceled reports an error that is a context's end.
func canceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// waitFor waits until done closes (true), or stop, ctx or patience
// (false).
func waitFor(ctx context.Context, stop <-chan struct{}, done <-chan struct{}, patience time.Duration) bool {
	t := time.NewTimer(max(patience, 0))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-stop:
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// fetchLocked runs a fetch for the jobs waiting now; l.mu is held on entry
// and released on return.
func (l *limiter) fetchLocked(ctx context.Context) (bool, time.Duration, error) {
	l.tokens = 0
	// Enough for the jobs waiting now and for those this worker will
	// bring within a token's life at its rate of the last 200 ms.
	recent, _ := l.recent(2)
	ahead := int(math.Ceil(float64(recent) / 0.2 * tokenLife.Seconds()))
	n := min(maxFetch, max(1, l.waiting, ahead))
	call := &fetchCall{done: make(chan struct{})}
	l.fetching = call
	cuts := l.cuts
	l.mu.Unlock()

	defer func() {
		// Deferred, so that the jobs waiting for this fetch are released
		// whatever happens to it.
		l.mu.Lock()
		l.fetching = nil
		close(call.done)
		l.mu.Unlock()
	}()
	var (
		got   int
		retry time.Duration
		rate  float64
	)
	got, retry, rate, call.err = l.fetch(ctx, n)

	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case call.err != nil:
		return false, 0, call.err
	case got == 0:
		// Come back when the next token is due, plus a moment for more
		// to gather if more jobs wait and the bucket can hold them: one
		// call then serves them all.
		burst, _ := bucketOf(rate)
		more := time.Duration(float64(min(n, burst)-1) / rate * float64(time.Second))
		retry = max(retry, time.Millisecond) + min(more, tokenLife)
		l.emptyTill = time.Now().Add(retry)
		return false, retry, nil
	}
	if l.cuts == cuts { // no throttling answer since the fetch began
		l.tokens, l.tokensBy = got-1, time.Now().Add(tokenLife)
	}
	return true, 0, nil
}

// bucketOf returns the shared bucket's size at rate (50 ms of calls, at
// least one) and the rate in whole calls per 10 s.
func bucketOf(rate float64) (burst, per10s int) {
	return max(1, int(rate/20)), max(1, int(rate*10))
}

// fetch takes up to n tokens from the shared bucket at the effective rate,
// which it returns too.
func (l *limiter) fetch(ctx context.Context, n int) (int, time.Duration, float64, error) {
	rate, err := l.current(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	burst, per10s := bucketOf(rate)
	vals, err := limitTake.Run(ctx, l.rdb, []string{l.gcraKey}, burst, per10s, 10, n).Slice()
	if err != nil {
		return 0, 0, 0, err
	}
	if len(vals) != 2 {
		return 0, 0, 0, fmt.Errorf("limit script answered %v", vals)
	}
	got, _ := vals[0].(int64)
	s, _ := vals[1].(string)
	retry, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, 0, 0, err
	}
	return int(got), time.Duration(retry * float64(time.Second)), rate, nil
}

// count records a local call (throttled or not) in 100 ms buckets covering
// the last second.
func (l *limiter) count(throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slot := l.nowFunc().UnixMilli() / 100
	if slot != l.slot {
		for s := l.slot + 1; s <= slot && s <= l.slot+10; s++ {
			l.calls[s%10], l.thrott[s%10] = 0, 0
		}
		if slot-l.slot > 10 {
			l.calls, l.thrott = [10]int{}, [10]int{}
		}
		l.slot = slot
	}
	if throttled {
		l.thrott[slot%10]++
	} else {
		l.calls[slot%10]++
	}
}

// recent returns this worker's calls and throttled answers in the last k
// 100 ms buckets (1 to 10), the current one included. The caller holds
// l.mu.
func (l *limiter) recent(k int64) (calls, throttled int) {
	from := max(l.slot, l.nowFunc().UnixMilli()/100) - k + 1
	for s := from; s <= l.slot; s++ {
		calls += l.calls[s%10]
		throttled += l.thrott[s%10]
	}
	return calls, throttled
}

// lookback is the window in 100 ms buckets (1 to 10).
func (l *limiter) lookback() int64 {
	return min(10, max(1, int64(l.window/(100*time.Millisecond))))
}

// throttled reports a throttling answer: it proposes a cut proportional to
// the share of calls throttled in the last window (at least 3 %, at most
// half), which the shared state applies at most once per window however
// many answers arrive.
func (l *limiter) throttled(ctx context.Context) error {
	l.count(true)
	l.mu.Lock()
	l.tokens = 0 // fetched at a rate the provider just refused
	l.cuts++
	// The share is measured over the last window only, so that it reflects
	// the rate since the previous cut rather than before it.
	calls, thr := l.recent(l.lookback())
	rate := l.rate
	l.mu.Unlock()
	if rate == 0 {
		rate = l.cap
	}
	frac := 0.0
	if calls > 0 {
		frac = float64(thr) / float64(calls)
	}
	proposal := math.Max(l.min, rate*math.Min(0.97, math.Max(0.5, 1-frac)))
	now := l.nowFunc()
	r, err := limitCut.Run(ctx, l.rdb, []string{l.key}, l.cap, l.recovery, proposal, l.window.Milliseconds()).Float64()
	if err != nil {
		return err
	}
	l.set(r, now)
	return nil
}

// spread records a throttling answer for subsID and returns how many
// distinct SubsIds the fleet saw throttled within the spread window, this
// one included.
func (l *limiter) spread(ctx context.Context, subsID string) (int, error) {
	n, err := limitSpread.Run(ctx, l.rdb, []string{l.spreadKey}, subsID, l.spreadWindow.Milliseconds()).Int()
	return n, err
}
