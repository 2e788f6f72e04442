package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fence makes the newest update of a binding field win. Per SubsId it
// keeps, in one hash, the last applied version of each OperateType, and one
// lock so that two jobs for a binding are never in flight at once. Both keys
// are hash-tagged on the SubsId, so the scripts work on Redis Cluster.
//
// begin: superseded at once if a newer version was applied (or already
// applied, if this very version was); busy if another job holds the lock;
// otherwise take the lock with a TTL above the call timeout and record, in
// the job's state hash (same slot), that an attempt is starting.
// commit: record the version if it is newer, release the lock if ours, and
// forget the job's state (it has ended).
// release: release the lock if ours and clear the attempt marker (a call
// that applied nothing, or none made).
var (
	fenceBegin = redis.NewScript(`
local applied = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local v = tonumber(ARGV[2])
if applied > v then return {0, applied} end
if applied == v then return {3, applied} end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[3] then return {1, redis.call('PTTL', KEYS[2])} end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[3], 'inflight', ARGV[5])
redis.call('HSETNX', KEYS[3], 'first_seen', ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {2, applied}`)
	fenceCommit = redis.NewScript(`
local applied = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > applied then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[3])
return applied`)
	fenceRelease = redis.NewScript(`
redis.call('HDEL', KEYS[2], 'inflight')
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

type fenceVerdict int

const (
	fenceSuperseded fenceVerdict = iota // a newer version was applied
	fenceBusy                           // another job holds the binding
	fenceGo                             // the lock is ours: call the API
	fenceDone                           // this version was already applied
)

type fence struct {
	rdb     redis.UniversalClient
	prefix  string
	lockTTL time.Duration
}

func (f *fence) keys(subsID string) (fenceKey, lockKey string) {
	return fmt.Sprintf("%s:{%s}:fence", f.prefix, subsID), fmt.Sprintf("%s:{%s}:lock", f.prefix, subsID)
}

// begin runs the begin script. It returns the verdict and the newest
// applied version (or, when busy, the lock's remaining time in ms).
func (f *fence) begin(ctx context.Context, st *jobState, subsID, op string, version int64, token string, now time.Time, stateTTL time.Duration) (fenceVerdict, int64, error) {
	fk, lk := f.keys(subsID)
	res, err := fenceBegin.Run(ctx, f.rdb, []string{fk, lk, st.key}, op, version, token, f.lockTTL.Milliseconds(),
		now.UnixMilli(), stateTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	return fenceVerdict(res[0]), res[1], nil
}

func (f *fence) commit(ctx context.Context, st *jobState, subsID, op string, version int64, token string) error {
	fk, lk := f.keys(subsID)
	return fenceCommit.Run(ctx, f.rdb, []string{fk, lk, st.key}, op, version, token).Err()
}

func (f *fence) release(ctx context.Context, st *jobState, subsID, token string) error {
	_, lk := f.keys(subsID)
	return fenceRelease.Run(ctx, f.rdb, []string{lk, st.key}, token).Err()
}
