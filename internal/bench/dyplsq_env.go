package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
)

// Helpers shared by the scenarios that run dyplsq (or a naive worker)
// against the simulator through the real SDK.

// simCallTimeout is the API call timeout (DYPLS_TIMEOUT) of the bench
// clients: loopback calls answer in milliseconds.
const simCallTimeout = 5 * time.Second

// startSim starts a simulator on a free loopback port. The returned func
// stops it.
func startSim(cfg dyplsim.Config) (*dyplsim.Sim, string, func(), error) {
	if cfg.RandSeed == 0 {
		cfg.RandSeed = 1
	}
	sim, srv, addr, err := dyplsim.Start(cfg, "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	return sim, addr, func() { sim.Close(); _ = srv.Close() }, nil
}

// newAPI returns a dypls.Client (the real SDK, pooled) on the simulator.
func newAPI(addr string) (*dypls.Client, error) {
	return dypls.New(dypls.Config{
		Endpoint:        "http://" + addr,
		AccessKeyID:     dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret,
		Timeout:         simCallTimeout,
	})
}

// newRedis returns a go-redis client of its own on the bench Redis (its
// own pool, as a worker process has).
func (e *Env) newRedis() *redis.Client {
	o := *e.Redis.Options()
	return redis.NewClient(&o)
}

// keyPrefix returns a fresh dyplsq key prefix, so that repetitions on an
// external Redis never see each other's fence records or limiter state.
func keyPrefix(scenario string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "bench-" + scenario + "-" + hex.EncodeToString(b[:])
}

// dropPrefix deletes every key under prefix (dyplsq's own keys; the
// harness deletes the asynq queues). A private Redis is flushed anyway.
func (e *Env) dropPrefix(prefix string) {
	if e.private {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := e.Redis.Scan(ctx, 0, prefix+":*", 500).Iterator()
	for iter.Next(ctx) {
		if err := e.Redis.Del(ctx, iter.Val()).Err(); err != nil {
			e.Logf("bench: delete %s: %v", iter.Val(), err)
			return
		}
	}
	if err := iter.Err(); err != nil {
		e.Logf("bench: scan %s:*: %v", prefix, err)
	}
}

// outIDUpdate returns the job number i (0-based): updateOutId on seeded
// binding i+1, so that n jobs touch n distinct bindings and the fence
// supersedes none of them.
func outIDUpdate(i int) tasks.Update {
	b := dyplsim.SeedBinding(i + 1)
	return tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX,
		OperateType: "updateOutId", OutId: "bench-" + strconv.Itoa(i)}
}

// enqueueUpdates enqueues outIDUpdate(0) … outIDUpdate(n-1) on queue with a
// tasks.Producer (a version each, taken at enqueue) from g goroutines.
func (e *Env) enqueueUpdates(ctx context.Context, queue, prefix string, n, g int) error {
	client := asynq.NewClient(e.connOpt)
	defer client.Close()
	rdb := e.newRedis()
	defer rdb.Close()
	p := &tasks.Producer{Client: client, Redis: rdb, Queue: queue, KeyPrefix: prefix}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range max(g, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if _, err := p.Enqueue(ctx, outIDUpdate(i)); err != nil {
					errOnce.Do(func() { firstEr = fmt.Errorf("enqueue job %d: %w", i, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	return ctx.Err()
}

// queueCounts reads the sizes of a queue's pending list and its completed
// and archived sets straight from asynq's keys (GetQueueInfo also samples
// memory usage: too heavy to poll).
func (e *Env) queueCounts(ctx context.Context, queue string) (pending, completed, archived int64, err error) {
	pipe := e.Redis.Pipeline()
	p := pipe.LLen(ctx, "asynq:{"+queue+"}:pending")
	c := pipe.ZCard(ctx, "asynq:{"+queue+"}:completed")
	a := pipe.ZCard(ctx, "asynq:{"+queue+"}:archived")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, 0, err
	}
	return p.Val(), c.Val(), a.Val(), nil
}

// completionPoll is how often waitCompleted looks at the completed set.
const completionPoll = 5 * time.Millisecond

// waitCompleted polls until n tasks of queue are completed and returns
// when it saw that. It fails when a task is archived (dead) or ctx ends.
func (e *Env) waitCompleted(ctx context.Context, queue string, n int) (time.Time, error) {
	t := time.NewTicker(completionPoll)
	defer t.Stop()
	for {
		_, completed, archived, err := e.queueCounts(ctx, queue)
		now := time.Now()
		switch {
		case err != nil && ctx.Err() == nil:
			return now, err
		case archived > 0:
			return now, fmt.Errorf("%d job(s) archived (dead); %d of %d completed", archived, completed, n)
		case completed >= int64(n):
			return now, nil
		}
		select {
		case <-ctx.Done():
			return now, fmt.Errorf("%d of %d jobs completed: %w", completed, n, ctx.Err())
		case <-t.C:
		}
	}
}

// checkApplied verifies that the simulator applied exactly n updates and
// logs any call beyond that.
func (e *Env) checkApplied(name string, sim *dyplsim.Sim, n int) error {
	st := sim.Stats()
	if st.Applied != n {
		return fmt.Errorf("simulator applied %d updates, want %d (calls: %v)", st.Applied, n, st.Calls)
	}
	if calls := st.Calls["UpdateSubscription"]; len(calls) != 1 || calls["OK"] != n {
		e.Logf("%-22s note: UpdateSubscription answers %v for %d jobs", name, calls, n)
	}
	return nil
}

// benchLogger is the zerolog logger the bench's workers get: events at
// info level and above are built as in production (the cost is part of the
// figure), warnings and errors reach stderr, the rest is discarded.
func (e *Env) benchLogger() zerolog.Logger {
	return zerolog.New(warnWriter{e.Stderr}).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// warnWriter forwards zerolog events of warning level and above.
type warnWriter struct{ w io.Writer }

func (w warnWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w warnWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l >= zerolog.WarnLevel && l != zerolog.NoLevel {
		return w.w.Write(p)
	}
	return len(p), nil
}

// cpuMark is the CPU time used so far by this process (worker, SDK,
// simulator) and by the bench Redis server.
type cpuMark struct {
	proc, redis time.Duration
	cmds        int64 // Redis's total_commands_processed
}

// cpuNow reads a cpuMark; the Redis parts are 0 when INFO says nothing.
func (e *Env) cpuNow(ctx context.Context) cpuMark {
	m := cpuMark{proc: processCPU()}
	if info, err := e.Redis.InfoMap(ctx, "cpu", "stats").Result(); err == nil {
		for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
			if v, err := strconv.ParseFloat(info["CPU"][k], 64); err == nil {
				m.redis += time.Duration(v * float64(time.Second))
			}
		}
		m.cmds, _ = commandsIn(info)
	}
	return m
}

// commandsIn reads total_commands_processed from an INFO answer that holds
// the stats section: every command Redis ran, those scripts ran included.
func commandsIn(info map[string]map[string]string) (int64, error) {
	return strconv.ParseInt(info["Stats"]["total_commands_processed"], 10, 64)
}

// logCPU logs the CPU time and Redis commands per job between two marks
// (figures that other load on the machine moves much less than a rate) and
// returns them as extra figures: process-cpu, redis-cpu, redis-cmds.
func (e *Env) logCPU(name string, from, to cpuMark, jobs int) []Extra {
	if jobs <= 0 || to.proc <= from.proc {
		return nil
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(jobs) }
	cmds := float64(to.cmds-from.cmds) / float64(jobs)
	e.Logf("%-22s per job: %.0f µs CPU in this process (worker, SDK, simulator), %.0f µs in redis-server, %.1f Redis commands",
		name, per(to.proc-from.proc), per(to.redis-from.redis), cmds)
	return []Extra{
		{Name: "process-cpu", Unit: "µs/job", Value: per(to.proc - from.proc)},
		{Name: "redis-cpu", Unit: "µs/job", Value: per(to.redis - from.redis)},
		{Name: "redis-cmds", Unit: "cmds/job", Value: cmds},
	}
}
