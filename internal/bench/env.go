package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TaskType is the asynq task type the scenarios enqueue: dyplsq's own.
const TaskType = "dypls:update_subscription"

// Env is what a scenario gets: the bench Redis and helpers.
type Env struct {
	// N is the number of tasks a scenario should handle (-n).
	N int
	// Redis is a go-redis client on the bench Redis, for checks and set-up.
	Redis *redis.Client
	// Addr is the bench Redis address (host:port).
	Addr string
	// Stderr receives progress and server logs.
	Stderr io.Writer

	connOpt  asynq.RedisConnOpt
	private  bool // the harness started the Redis and may flush it
	mu       sync.Mutex
	queues   []string // queues handed out since the last reset
	payloads [][]byte
}

// AsynqOpt returns the connection option for asynq.NewClient, NewServer and
// NewInspector, so each gets its own connection pool as in production.
func (e *Env) AsynqOpt() asynq.RedisConnOpt { return e.connOpt }

// Queue returns a fresh queue name starting with "bench-" and prefix. The
// harness deletes the queues it handed out before the next repetition and
// at the end of the run.
func (e *Env) Queue(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	q := "bench-" + prefix + "-" + hex.EncodeToString(b[:])
	e.mu.Lock()
	e.queues = append(e.queues, q)
	e.mu.Unlock()
	return q
}

// Logf writes one progress line to Stderr.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Stderr, format+"\n", args...)
}

// Payload returns the realistic job payload number i (about 300 bytes of
// JSON): an updateNoA job with distinct SubsId and numbers per i, and a
// metadata object like the one dyplsq adds at enqueue.
func (e *Env) Payload(i int) []byte {
	return makePayload(i)
}

// Payloads returns n payloads, Payload(0) to Payload(n-1). The slice is
// cached and shared: do not modify it.
func (e *Env) Payloads(n int) [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.payloads) < n {
		e.payloads = append(e.payloads, makePayload(len(e.payloads)))
	}
	return e.payloads[:n:n]
}

type payloadMeta struct {
	Schema     int    `json:"schema"`
	Version    int64  `json:"version"`
	EnqueuedAt string `json:"enqueued_at"`
	BatchID    string `json:"batch_id"`
	Source     string `json:"source"`
}

type payload struct {
	PoolKey     string      `json:"PoolKey"`
	SubsID      string      `json:"SubsId"`
	PhoneNoX    string      `json:"PhoneNoX"`
	OperateType string      `json:"OperateType"`
	PhoneNoA    string      `json:"PhoneNoA"`
	OutID       string      `json:"OutId"`
	Meta        payloadMeta `json:"_meta"`
}

var payloadEpoch = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func makePayload(i int) []byte {
	p := payload{
		PoolKey:     "FC100000000000001",
		SubsID:      fmt.Sprintf("%016d", 1000000000000001+i),
		PhoneNoX:    fmt.Sprintf("170%08d", i%100000000),
		OperateType: "updateNoA",
		PhoneNoA:    fmt.Sprintf("138%08d", i%100000000),
		OutID:       fmt.Sprintf("order-%012d", i),
		Meta: payloadMeta{
			Schema:     1,
			Version:    int64(1000000 + i),
			EnqueuedAt: payloadEpoch.Add(time.Duration(i) * time.Microsecond).Format(time.RFC3339Nano),
			BatchID:    "b-20260102-150405-0001",
			Source:     "bench",
		},
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // fixed struct of strings and numbers: cannot fail
	}
	return b
}

// Enqueue puts payloads on queue as TaskType tasks with plain
// asynq.Client.Enqueue from g goroutines, and returns how long that took.
func (e *Env) Enqueue(ctx context.Context, queue string, payloads [][]byte, g int) (time.Duration, error) {
	client := asynq.NewClient(e.connOpt)
	defer client.Close()
	return enqueueWith(ctx, client, queue, payloads, g)
}

// enqueueWith enqueues every payload once, spread over g goroutines taking
// the next index from a shared counter. It stops at the first error.
func enqueueWith(ctx context.Context, client *asynq.Client, queue string, payloads [][]byte, g int) (time.Duration, error) {
	if g < 1 {
		g = 1
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(payloads) || ctx.Err() != nil {
					return
				}
				t := asynq.NewTask(TaskType, payloads[i])
				if _, err := client.EnqueueContext(ctx, t, asynq.Queue(queue)); err != nil {
					errOnce.Do(func() { firstEr = fmt.Errorf("enqueue task %d: %w", i, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstEr != nil {
		return elapsed, firstEr
	}
	return elapsed, ctx.Err()
}

// QueueSize returns the number of pending, active, scheduled and retry tasks
// in queue.
func (e *Env) QueueSize(queue string) (pending, inFlight int, err error) {
	insp := asynq.NewInspector(e.connOpt)
	defer insp.Close()
	info, err := insp.GetQueueInfo(queue)
	if err != nil {
		return 0, 0, err
	}
	return info.Pending, info.Active + info.Scheduled + info.Retry, nil
}

// reset empties the bench Redis before a repetition: FLUSHALL on the
// private server; on an external one (-redis-url), only the queues handed
// out by Queue are deleted.
func (e *Env) reset(ctx context.Context) error {
	e.mu.Lock()
	queues := e.queues
	e.queues = nil
	e.mu.Unlock()
	if e.private {
		return e.Redis.FlushAll(ctx).Err()
	}
	if len(queues) == 0 {
		return nil
	}
	insp := asynq.NewInspector(e.connOpt)
	defer insp.Close()
	for _, q := range queues {
		if err := insp.DeleteQueue(q, true); err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			return fmt.Errorf("delete bench queue %s: %w", q, err)
		}
		// DeleteQueue leaves the daily processed/failed counters.
		iter := e.Redis.Scan(ctx, 0, "asynq:{"+q+"}:*", 100).Iterator()
		for iter.Next(ctx) {
			if err := e.Redis.Del(ctx, iter.Val()).Err(); err != nil {
				return fmt.Errorf("delete bench key %s: %w", iter.Val(), err)
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("scan bench queue %s keys: %w", q, err)
		}
	}
	return nil
}

// asynqLogger sends asynq's warnings and errors to the harness's stderr.
type asynqLogger struct{ w io.Writer }

func (l asynqLogger) log(level string, args ...any) {
	fmt.Fprintf(l.w, "asynq %s: %s\n", level, fmt.Sprint(args...))
}

func (l asynqLogger) Debug(args ...any) { l.log("debug", args...) }
func (l asynqLogger) Info(args ...any)  { l.log("info", args...) }
func (l asynqLogger) Warn(args ...any)  { l.log("warn", args...) }
func (l asynqLogger) Error(args ...any) { l.log("error", args...) }
func (l asynqLogger) Fatal(args ...any) { l.log("fatal", args...) }
