package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/tasks"
)

// enqueueConcurrency is how many items of one request are queued at once.
const enqueueConcurrency = 16

// Accepted is the answer to a POST /v1/updates: one entry per item, in
// the request's order.
type Accepted struct {
	BatchID string         `json:"batchId"`
	Queue   string         `json:"queue"`
	Items   []AcceptedItem `json:"items"`
}

// AcceptedItem is one queued (or already queued) update.
type AcceptedItem struct {
	Index  int    `json:"index"`
	TaskID string `json:"taskId"`
	// Version orders the updates of one binding field; 0 (left out) for
	// an item whose IdempotencyKey another producer had already queued.
	Version int64  `json:"version,omitempty"`
	Queue   string `json:"queue"`
	// Duplicate reports an item queued before (the same request sent
	// again, or an IdempotencyKey already used): nothing was added.
	Duplicate bool     `json:"duplicate"`
	Warnings  []detail `json:"warnings,omitempty"`
	// Durable is set when the request asked for ?durable=N: true once N
	// Redis replicas held the item (and every item of the request), false
	// when they did not in time; the item is queued either way, and
	// DurableError says why it is not confirmed.
	Durable      *bool    `json:"durable,omitempty"`
	DurableError *Problem `json:"durableError,omitempty"`
}

// httpError is a failure with its HTTP status and error code.
type httpError struct {
	status        int
	code, message string
}

func unavailable(err error) *httpError {
	_ = err // the cause is Redis; its text may carry addresses, not for clients
	return &httpError{http.StatusServiceUnavailable, "unavailable",
		"Redis did not answer: what was queued is recorded; send the same request again with the same Idempotency-Key"}
}

// unavailableIn is unavailable for a request that may have queued some of
// its items in batch id: it says where to see them, and how to retry
// without queueing them twice.
func unavailableIn(id, key string, err error) *httpError {
	e := unavailable(err)
	if key == "" {
		e.message = "Redis did not answer: some items may be queued, in batch " + id +
			" (GET /v1/batches/" + id + "); send the request again with an Idempotency-Key to be sure nothing is queued twice"
	}
	return e
}

// queued is one item on its way into asynq.
type queued struct {
	u        tasks.Update
	line     int
	queue    string // the request's queue, or its shard for the item's binding
	task     *asynq.Task
	taskID   string
	keyed    bool
	prior    string // its outcome in the batch record before this request
	outcome  string // the outcome to record
	fresh    bool   // queued by this request
	dupOther bool   // its IdempotencyKey was queued by another producer
	err      error
}

// enqueue queues items as one batch of queue and answers with their task
// ids and versions; with durable, once replicas hold them, or saying they
// did not.
func (s *Server) enqueue(ctx context.Context, r *http.Request, items []tasks.Update, queue, key string,
	durable *tasks.Durability) (*Accepted, *httpError) {
	token := info(r).token
	id, err := batchID(token, key)
	if err != nil {
		return nil, &httpError{http.StatusInternalServerError, "internal", "cannot make a batch id"}
	}
	if key != "" {
		if e := s.claimKey(ctx, id, queue, items); e != nil {
			return nil, e
		}
	}
	n := len(items)
	bi, _, err := s.batches.Begin(ctx, batch.Info{ID: id, File: "POST /v1/updates", Format: "json", Queue: queue,
		Origin: "api:" + token, Lines: n, Rows: n, ValidRows: n})
	if err != nil {
		return nil, unavailable(err)
	}
	if bi.State == batch.StateCancelled {
		return nil, &httpError{http.StatusConflict, "batch_cancelled", "the batch of this Idempotency-Key was cancelled: use a new key"}
	}
	outs, err := s.batches.Outcomes(ctx, id, 1, n)
	if err != nil {
		return nil, unavailable(err)
	}
	// Lines 1..n lie in version block 0 (n ≤ MaxItems < BlockLines).
	first, err := s.batches.Versions(ctx, id, 0, n+1)
	if err != nil {
		return nil, unavailable(err)
	}
	layout, err := tasks.ReadLayout(ctx, s.cfg.Redis, s.cfg.KeyPrefix, queue)
	if err != nil {
		return nil, unavailable(err)
	}
	qs := make([]*queued, n)
	for i, u := range items {
		q, err := s.prepare(u, bi, i+1, first+int64(i+1), layout.QueueFor(u.SubsId))
		if err != nil {
			return nil, &httpError{http.StatusUnprocessableEntity, "validation_failed", "item " + strconv.Itoa(i) + ": " + err.Error()}
		}
		q.prior = outs[i]
		q.dupOther = q.prior == batch.OutcomeDuplicate
		qs[i] = q
	}
	primary, err := s.primaries(ctx, qs, durable)
	if err != nil {
		return nil, unavailable(err)
	}
	// Once items go into asynq, a client that hangs up does not stop the
	// request half-way, and whatever was queued is recorded even when a
	// later item fails.
	wctx := context.WithoutCancel(ctx)
	qerr := s.enqueueAll(wctx, id, qs)
	if err := s.record(wctx, id, qs); err != nil {
		return nil, unavailableIn(id, key, err)
	}
	if qerr != nil {
		return nil, unavailableIn(id, key, qerr)
	}
	if _, err := s.batches.Complete(ctx, id); err != nil {
		return nil, unavailable(err)
	}
	acc := s.accepted(id, queue, first, qs)
	if durable != nil {
		// The record and the batch's end come last: replicas holding them
		// hold every item. A split queue's shards may live on different
		// primaries: each is waited for.
		problems := s.confirmAll(wctx, primary, *durable)
		for i := range acc.Items {
			problem := problems[qs[i].queue]
			ok := problem == nil
			acc.Items[i].Durable, acc.Items[i].DurableError = &ok, problem
		}
	}
	return acc, nil
}

// primaries returns, with durable, the id of the Redis primary of each
// queue the items go to, read before they are queued.
func (s *Server) primaries(ctx context.Context, qs []*queued, durable *tasks.Durability) (map[string]string, error) {
	out := map[string]string{}
	for _, q := range qs {
		if _, ok := out[q.queue]; durable == nil || ok {
			continue
		}
		id, err := tasks.PrimaryID(ctx, s.cfg.Redis, s.cfg.KeyPrefix, q.queue)
		if err != nil {
			return nil, err
		}
		out[q.queue] = id
	}
	return out, nil
}

// confirmAll waits at once for the replicas of each queue's primary (the
// shards of a split queue may live on different primaries), and returns
// what each wait found.
func (s *Server) confirmAll(ctx context.Context, primary map[string]string, d tasks.Durability) map[string]*Problem {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := make(map[string]*Problem, len(primary))
	for q, p := range primary {
		wg.Go(func() {
			problem := s.confirm(ctx, q, p, d)
			mu.Lock()
			out[q] = problem
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// batchID names the batch of a request: derived from the token's name and
// the Idempotency-Key, or random without a key.
func batchID(token, key string) (string, error) {
	h := batch.NewHasher("api")
	if key != "" {
		_, _ = h.Write([]byte("key\x00" + token + "\x00" + key))
		return h.ID(), nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	_, _ = h.Write(append([]byte("random\x00"), b[:]...))
	return h.ID(), nil
}

// claimKey records the fingerprint of the request under its key, or checks
// it against the one recorded: the same key with another request is a
// conflict.
func (s *Server) claimKey(ctx context.Context, id, queue string, items []tasks.Update) *httpError {
	b, err := json.Marshal(items) // normalized: spacing, key case and order do not matter
	if err != nil {
		return &httpError{http.StatusInternalServerError, "internal", "cannot encode the request"}
	}
	sum := sha256.Sum256(append([]byte(queue+"\n"), b...))
	fp := hex.EncodeToString(sum[:])
	ttl := s.cfg.BatchWindow
	if ttl <= 0 {
		ttl = batch.DefaultTTL
	}
	prev, err := s.cfg.Redis.SetArgs(ctx, s.requestKey(id), fp, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil // first use
	case err != nil:
		return unavailable(err)
	case prev != fp:
		return &httpError{http.StatusConflict, "idempotency_key_reused",
			"this Idempotency-Key was used for a different request (other updates or queue): use a new key for a new request"}
	}
	return nil
}

// prepare builds the task of one item, line of batch bi.
func (s *Server) prepare(u tasks.Update, bi batch.Info, line int, version int64, queue string) (*queued, error) {
	u.Meta = &tasks.Meta{Version: version, Batch: bi.ID, Line: line, Source: tasks.SourceAPI}
	q := &queued{u: u, line: line, queue: queue}
	opts := []asynq.Option{asynq.Queue(queue)}
	if k := strings.TrimSpace(u.IdempotencyKey); k != "" {
		q.keyed, q.taskID = true, tasks.TaskIDForKey(k) // NewTask sets it as the task id
	} else {
		q.taskID = bi.TaskID(line)
		opts = append(opts, asynq.TaskID(q.taskID))
	}
	t, err := tasks.NewTask(u, opts...)
	if err != nil {
		return nil, err
	}
	q.task = t
	return q, nil
}

// enqueueAll queues the items not recorded before, a few at a time.
func (s *Server) enqueueAll(ctx context.Context, id string, qs []*queued) error {
	work := make(chan *queued)
	var wg sync.WaitGroup
	for range enqueueConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range work {
				q.err = s.enqueueOne(ctx, id, q)
			}
		}()
	}
	for _, q := range qs {
		if q.prior == "" {
			work <- q
		}
	}
	close(work)
	wg.Wait()
	for _, q := range qs {
		if q.err != nil {
			return q.err
		}
	}
	return nil
}

// enqueueOne queues one item; afterwards q.outcome says what to record.
func (s *Server) enqueueOne(ctx context.Context, id string, q *queued) error {
	if q.keyed {
		legacy, taken, err := tasks.LegacyKeyTask(s.insp, q.queue, strings.TrimSpace(q.u.IdempotencyKey))
		if err != nil {
			return err
		}
		if taken {
			q.taskID, q.outcome, q.dupOther = legacy, batch.OutcomeDuplicate, true
			return nil
		}
	}
	_, err := s.client.EnqueueContext(ctx, q.task)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		q.outcome = batch.OutcomePending
		if q.keyed && !s.ours(q.queue, q.taskID, id, q.line) {
			q.outcome, q.dupOther = batch.OutcomeDuplicate, true
		}
		return nil
	case err != nil:
		return err
	}
	q.outcome, q.fresh = batch.OutcomePending, true
	return nil
}

// ours reports whether task id is line of batch id, queued by an earlier
// request.
func (s *Server) ours(queue, taskID, id string, line int) bool {
	ti, err := s.insp.GetTaskInfo(queue, taskID)
	if err != nil {
		return false
	}
	var p struct {
		Meta *tasks.Meta `json:"_meta"`
	}
	return json.Unmarshal(ti.Payload, &p) == nil && p.Meta != nil && p.Meta.Batch == id && p.Meta.Line == line
}

// record writes the items queued by this request to the batch record.
func (s *Server) record(ctx context.Context, id string, qs []*queued) error {
	var entries []batch.Entry
	for _, q := range qs {
		if q.prior != "" || q.outcome == "" {
			continue
		}
		e := batch.Entry{Line: q.line, Outcome: q.outcome}
		if q.keyed {
			e.TaskID = q.taskID
		}
		if q.dupOther {
			e.Message = "IdempotencyKey already used: another producer or batch queued a task with this key (see task id), so this item was not queued again"
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil
	}
	_, err := s.batches.Record(ctx, id, entries)
	return err
}

// accepted is the answer: every item with its task id and version.
func (s *Server) accepted(id, queue string, first int64, qs []*queued) *Accepted {
	now := s.cfg.Now()
	out := &Accepted{BatchID: id, Queue: queue, Items: make([]AcceptedItem, len(qs))}
	for i, q := range qs {
		it := AcceptedItem{Index: i, TaskID: q.taskID, Queue: q.queue, Version: first + int64(q.line)}
		if q.dupOther {
			it.Version = 0
		}
		it.Duplicate = !q.fresh
		for _, p := range q.u.Warnings(now) {
			it.Warnings = append(it.Warnings, detail{Field: p.Field, Reason: p.Reason})
		}
		out.Items[i] = it
	}
	return out
}
