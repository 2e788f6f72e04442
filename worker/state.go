package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/tasks"
)

// jobState is what dyplsq remembers about one job between attempts, in a
// Redis hash hash-tagged on the SubsId and keyed by the task id alone, so
// that retries, crash recoveries and dead-letter requeues (which keep the
// task id) all find it. A requeue gives a fresh attempt budget: the hash
// remembers the requeue generation it counts for ("gen") and starts the
// count again when the payload says it was requeued since. What must
// outlive a requeue stays: the version a plain-asynq job was given, and
// whether an earlier attempt may have applied the update.
type jobState struct {
	key          string
	Attempts     int       // counted (transient) attempts in this generation
	FirstSeen    time.Time // first pick-up by a worker
	FirstFailure time.Time
	LastFailure  time.Time
	LastCode     string
	LastMessage  string
	LastRequest  string
	Ambiguous    bool  // an earlier attempt may have been applied without our knowing
	Crashed      bool  // an attempt started and never recorded its end
	Version      int64 // given at first pick-up to a job enqueued without one
}

type stateStore struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

func (s *stateStore) key(subsID, taskID string) string {
	return tasks.JobStateKey(s.prefix, subsID, taskID)
}

// legacyKey is where workers before the requeue-proof layout kept the
// state of generation gen; it is read once so an upgrade loses nothing.
func (s *stateStore) legacyKey(subsID, taskID string, gen int) string {
	return legacyJobStateKey(s.prefix, subsID, taskID, gen)
}

// load reads the state of a job in requeue generation gen. It records the
// first pick-up time when persistFirstSeen (a job that does not say when
// it was enqueued), and starts a new attempt budget when gen is newer than
// the stored one.
func (s *stateStore) load(ctx context.Context, subsID, taskID string, gen int, now time.Time, persistFirstSeen bool) (*jobState, error) {
	st := &jobState{key: s.key(subsID, taskID)}
	pipe := s.rdb.Pipeline()
	cur := pipe.HGetAll(ctx, st.key)
	old := pipe.HGetAll(ctx, s.legacyKey(subsID, taskID, gen))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	m := cur.Val()
	if len(m) == 0 && len(old.Val()) > 0 {
		m = old.Val()
		m["gen"] = strconv.Itoa(gen)
		if err := s.rdb.HSet(ctx, st.key, m).Err(); err != nil {
			return nil, err
		}
	}
	storedGen, _ := strconv.Atoi(m["gen"])
	st.fill(m, gen <= storedGen, now)
	if gen > storedGen {
		// Requeued since: a fresh attempt budget, the rest kept.
		pipe := s.rdb.Pipeline()
		if len(m) > 0 {
			pipe.HDel(ctx, st.key, "attempts", "first_failure", "last_failure", "last_code", "last_message", "last_request_id")
		}
		pipe.HSet(ctx, st.key, "gen", gen)
		pipe.PExpire(ctx, st.key, s.ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	if unixMilli(m["first_seen"]).IsZero() {
		if !persistFirstSeen {
			return st, nil
		}
		pipe := s.rdb.Pipeline()
		pipe.HSetNX(ctx, st.key, "first_seen", now.UnixMilli())
		pipe.HSetNX(ctx, st.key, "gen", gen)
		pipe.PExpire(ctx, st.key, s.ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// fill sets st from m, the job's state hash as stored; keepBudget keeps
// the attempt budget's fields (attempts, failures, last answer), which a
// requeue since the state was written starts afresh. A job never picked up
// before is first seen now.
func (st *jobState) fill(m map[string]string, keepBudget bool, now time.Time) {
	st.Version, _ = strconv.ParseInt(m["version"], 10, 64)
	st.Ambiguous = m["ambiguous"] == "1"
	st.Crashed = m["inflight"] != ""
	if st.Crashed {
		st.Ambiguous = true
	}
	st.FirstSeen = unixMilli(m["first_seen"])
	if st.FirstSeen.IsZero() {
		st.FirstSeen = now
	}
	if keepBudget {
		st.Attempts, _ = strconv.Atoi(m["attempts"])
		st.FirstFailure = unixMilli(m["first_failure"])
		st.LastFailure = unixMilli(m["last_failure"])
		st.LastCode = m["last_code"]
		st.LastMessage = m["last_message"]
		st.LastRequest = m["last_request_id"]
	}
}

// ensureVersion gives a job enqueued without a version one from the shared
// counter, once: retries, crash recoveries and requeues reuse it. This is
// weaker than a version taken at enqueue: it follows pick-up order, not
// enqueue order. A number taken but not stored (a lost reply) is skipped,
// which is harmless.
func (s *stateStore) ensureVersion(ctx context.Context, st *jobState, versionKey string) (int64, error) {
	if st.Version > 0 {
		return st.Version, nil
	}
	v, err := s.rdb.Incr(ctx, versionKey).Result()
	if err != nil {
		return 0, err
	}
	pipe := s.rdb.Pipeline()
	set := pipe.HSetNX(ctx, st.key, "version", v)
	get := pipe.HGet(ctx, st.key, "version")
	pipe.PExpire(ctx, st.key, s.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	if !set.Val() {
		if v, err = get.Int64(); err != nil {
			return 0, err
		}
	}
	st.Version = v
	return v, nil
}

func unixMilli(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// throttledBinding counts a throttling answer for subsID and returns how
// many it got in a row, this one included: the count starts again after a
// minute without one. The count is shared by the fleet, so a binding backed off by
// one worker is backed off by all.
func (s *stateStore) throttledBinding(ctx context.Context, subsID string) (int, error) {
	key := bindingThrottledKey(s.prefix, subsID)
	pipe := s.rdb.TxPipeline()
	n := pipe.Incr(ctx, key)
	pipe.PExpire(ctx, key, time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		return 1, err
	}
	return int(n.Val()), nil
}
