package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// jobState is what dyplsq remembers about one job between attempts, in a
// Redis hash hash-tagged on the SubsId. A requeue from the dead-letter queue
// starts a new hash (the requeue count is part of the key), so it gets a
// fresh attempt budget.
type jobState struct {
	key          string
	Attempts     int       // counted (transient) attempts so far
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

func (s *stateStore) key(subsID, taskID string, requeues int) string {
	return fmt.Sprintf("%s:{%s}:job:%s:%d", s.prefix, subsID, taskID, requeues)
}

// load reads the state and records the first pick-up time.
func (s *stateStore) load(ctx context.Context, subsID, taskID string, requeues int, now time.Time, persistFirstSeen bool) (*jobState, error) {
	st := &jobState{key: s.key(subsID, taskID, requeues)}
	m, err := s.rdb.HGetAll(ctx, st.key).Result()
	if err != nil {
		return nil, err
	}
	st.Attempts, _ = strconv.Atoi(m["attempts"])
	st.FirstSeen = unixMilli(m["first_seen"])
	st.FirstFailure = unixMilli(m["first_failure"])
	st.LastFailure = unixMilli(m["last_failure"])
	st.LastCode = m["last_code"]
	st.LastMessage = m["last_message"]
	st.LastRequest = m["last_request_id"]
	st.Ambiguous = m["ambiguous"] == "1"
	st.Crashed = m["inflight"] != ""
	st.Version, _ = strconv.ParseInt(m["version"], 10, 64)
	if st.Crashed {
		st.Ambiguous = true
	}
	if st.FirstSeen.IsZero() {
		st.FirstSeen = now
		if !persistFirstSeen {
			return st, nil
		}
		pipe := s.rdb.Pipeline()
		pipe.HSetNX(ctx, st.key, "first_seen", now.UnixMilli())
		pipe.Expire(ctx, st.key, s.ttl)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// ensureVersion gives a job enqueued without a version one from the shared
// counter, once: retries reuse it. This is weaker than a version taken at
// enqueue: it follows pick-up order, not enqueue order.
func (s *stateStore) ensureVersion(ctx context.Context, st *jobState, versionKey string) (int64, error) {
	if st.Version > 0 {
		return st.Version, nil
	}
	v, err := s.rdb.Incr(ctx, versionKey).Result()
	if err != nil {
		return 0, err
	}
	if ok, err := s.rdb.HSetNX(ctx, st.key, "version", v).Result(); err != nil {
		return 0, err
	} else if !ok {
		v, err = s.rdb.HGet(ctx, st.key, "version").Int64()
		if err != nil {
			return 0, err
		}
	}
	st.Version = v
	return v, nil
}

// begin records that a call is about to be made, so that a later attempt
// knows the outcome of this one may be unknown if it never records its end.
func (s *stateStore) begin(ctx context.Context, st *jobState, now time.Time) error {
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, st.key, "inflight", now.UnixMilli())
	pipe.HSetNX(ctx, st.key, "first_seen", now.UnixMilli())
	pipe.Expire(ctx, st.key, s.ttl)
	_, err := pipe.Exec(ctx)
	return err
}

// end records the end of a call. A counted failure increments attempts;
// an ambiguous one sets the flag for later attempts.
func (s *stateStore) end(ctx context.Context, st *jobState, now time.Time, counted, ambiguous bool, code, msg, requestID string) error {
	fields := map[string]any{"last_code": code, "last_message": msg, "last_request_id": requestID,
		"last_failure": now.UnixMilli()}
	if st.FirstFailure.IsZero() {
		st.FirstFailure = now
		fields["first_failure"] = now.UnixMilli()
	}
	if ambiguous {
		fields["ambiguous"] = "1"
		st.Ambiguous = true
	}
	st.LastFailure, st.LastCode, st.LastMessage, st.LastRequest = now, code, msg, requestID
	pipe := s.rdb.Pipeline()
	pipe.HDel(ctx, st.key, "inflight")
	pipe.HSet(ctx, st.key, fields)
	var incr *redis.IntCmd
	if counted {
		incr = pipe.HIncrBy(ctx, st.key, "attempts", 1)
	}
	pipe.Expire(ctx, st.key, s.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	if incr != nil {
		st.Attempts = int(incr.Val())
	}
	return nil
}

// clearInflight drops the in-flight marker after a call whose end needs no
// record (success, or a failure recorded elsewhere).
func (s *stateStore) clearInflight(ctx context.Context, st *jobState) error {
	return s.rdb.HDel(ctx, st.key, "inflight").Err()
}

// drop forgets the job once it has ended.
func (s *stateStore) drop(ctx context.Context, st *jobState) error {
	return s.rdb.Del(ctx, st.key).Err()
}

func unixMilli(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
