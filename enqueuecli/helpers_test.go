package enqueuecli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/tasks"
)

func init() { pollEvery = 100 * time.Millisecond }

// harness runs the command against a real Redis, in keys and a queue of its
// own.
type harness struct {
	t     *testing.T
	url   string
	rdb   redis.UniversalClient
	ns    string // key prefix
	queue string
	dir   string
	insp  *asynq.Inspector
	store *batch.Store
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, redistest.URL(t))
}

// newHarnessOn uses the Redis at url, cleaning up its keys afterwards.
func newHarnessOn(t *testing.T, url string) *harness {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	ns := redistest.Namespace(t)
	h := &harness{t: t, url: url, rdb: rdb, ns: ns, queue: ns + "-bulk", dir: t.TempDir(),
		insp: asynq.NewInspectorFromRedisClient(rdb)}
	h.store = &batch.Store{Redis: rdb, Prefix: ns}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		queues := []string{h.queue, ns + "-live", ns + "-other"}
		if all, err := h.insp.Queues(); err == nil {
			for _, q := range all {
				if strings.HasPrefix(q, h.queue+".") {
					queues = append(queues, q) // shards
				}
			}
		}
		for _, q := range queues {
			_ = h.insp.DeleteQueue(q, true)
		}
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, ns+":*", 1000).Result()
			if err != nil {
				break
			}
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		rdb.Close()
	})
	return h
}

func (h *harness) getenv(k string) string {
	switch k {
	case "REDIS_URL":
		return h.url
	case "DYPLSQ_KEY_PREFIX":
		return h.ns
	case "ENQUEUE_MAX_PENDING":
		return "0" // most tests queue with no worker running
	}
	return ""
}

// env returns the environment for a built binary.
func (h *harness) env() []string {
	return append(os.Environ(), "REDIS_URL="+h.url, "DYPLSQ_KEY_PREFIX="+h.ns, "REDIS_CLUSTER_ADDRS=", "ENQUEUE_MAX_PENDING=0")
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs the command in-process. The queue is the harness's unless args
// name one.
func (h *harness) run(args ...string) result {
	return h.runCtx(context.Background(), "", args...)
}

func (h *harness) runCtx(ctx context.Context, stdin string, args ...string) result {
	h.t.Helper()
	args = h.withQueue(args)
	var out, errb safebuf.Buffer
	code := Run(ctx, args, h.getenv, strings.NewReader(stdin), &out, &errb)
	safebuf.CheckLog(h.t, errb.String())
	return result{code, out.String(), errb.String()}
}

// withQueue adds --queue for the main command and dlq filters.
func (h *harness) withQueue(args []string) []string {
	if len(args) > 0 && (args[0] == "batch" || args[0] == "queue" || args[0] == "dlq" || args[0] == "help") {
		return args
	}
	for _, a := range args {
		if a == "--queue" || strings.HasPrefix(a, "--queue=") || a == "--help" {
			return args
		}
	}
	return append(append([]string{"--queue", h.queue}, args...), "--new-queue")
}

// write creates a file in the harness's directory.
func (h *harness) write(name, content string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// csvRows returns a CSV of n valid updateNoA rows for sample bindings 1..n
// (as the simulator seeds them), setting A to a new number.
func csvRows(n int) string {
	var b strings.Builder
	b.WriteString("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "FC100000000000001,%d,170%08d,updateNoA,137%08d\n", 1_000_000_000_000_000+i, i-1, i-1)
	}
	return b.String()
}

var batchRE = regexp.MustCompile(`batch (b[a-z2-9]{16})`)

// batchID finds the batch id in a run's output.
func batchID(t *testing.T, r result) string {
	t.Helper()
	m := batchRE.FindStringSubmatch(r.stdout + r.stderr)
	if m == nil {
		t.Fatalf("no batch id in output:\n%s", r)
	}
	return m[1]
}

var summaryRE = regexp.MustCompile(`read (\d+), valid (\d+), queued (\d+), already queued (\d+), invalid (\d+)`)

// counts reads the summary line: read, valid, queued, already, invalid.
func counts(t *testing.T, r result) [5]int {
	t.Helper()
	m := summaryRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no summary line:\n%s", r)
	}
	var c [5]int
	for i := range c {
		fmt.Sscan(m[i+1], &c[i])
	}
	return c
}

// pending returns the number of pending tasks in the harness's queue.
func (h *harness) pending() int {
	h.t.Helper()
	info, err := h.insp.GetQueueInfo(h.queue)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") || errors.Is(err, asynq.ErrQueueNotFound) {
			return 0
		}
		h.t.Fatal(err)
	}
	return info.Pending
}

// queued is one task of the queue, decoded.
type queued struct {
	id string
	u  tasks.Update
}

// tasksIn lists every pending task of the queue with its payload, by line.
func (h *harness) tasksIn() []queued {
	h.t.Helper()
	var out []queued
	for page := 1; ; page++ {
		infos, err := h.insp.ListPendingTasks(h.queue, asynq.PageSize(1000), asynq.Page(page))
		if err != nil {
			if strings.Contains(err.Error(), "does not exist") || errors.Is(err, asynq.ErrQueueNotFound) {
				return nil
			}
			h.t.Fatal(err)
		}
		for _, in := range infos {
			var u tasks.Update
			if err := json.Unmarshal(in.Payload, &u); err != nil {
				h.t.Fatalf("task %s: %v", in.ID, err)
			}
			out = append(out, queued{id: in.ID, u: u})
		}
		if len(infos) < 1000 {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].u.Meta.Line < out[j].u.Meta.Line })
	return out
}

func mustContain(t *testing.T, r result, where string, subs ...string) {
	t.Helper()
	s := r.stdout
	if where == "stderr" {
		s = r.stderr
	}
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", where, sub, r)
		}
	}
}
