package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/tasks"
)

// The fence makes the newest update of a binding field win and keeps one
// UpdateSubscription per binding in flight. Per SubsId it keeps, in one
// hash, for each OperateType:
//
//	<op>             the last applied version
//	r:<op>           the RequestId of that application
//	i:<op>:<task id> the intent "<version>|<deadline ms>" of a job whose
//	                 call may have applied without its version recorded
//
// and one lock (a string holding the attempt's token, with a TTL above
// everything the lock guards; "hold:<token>" while a call that may still
// be applying keeps the binding, which blocks the job's next attempt too). Every key of a binding, job states
// included, is hash-tagged on the SubsId, so the scripts work on Redis
// Cluster. The scripts read Redis's clock, never a worker's.
//
// The intent is what keeps an older job from overwriting a newer one whose
// call may have applied: it is written when the lock is taken, removed when
// a version at least as new is recorded (commit) or when the job proved
// nothing was applied or ended, and it is kept while an attempt's outcome is
// unknown (a timeout, a crash, a commit that Redis refused). Each job has its
// own, so a newer job's intent never hides an older one's. While any stands,
// jobs with an older version of the field wait ("blocked"); newer ones go
// ahead, since their value is meant to win anyway. An intent expires at its
// deadline (the job state's lifetime), after which its job cannot run.
// The hash lives tasks.FenceLifetime after its last begin or commit: long
// enough for every job that may still run (see tasks.VersionWindow).
// docs/ARCHITECTURE.md describes the keys; RELIABILITY.md the guarantees.
var (
	// fenceBegin KEYS: fence, lock, state, the state's legacy key (see
	// legacyJobStateKey). ARGV: op, version, token, lock TTL ms, state TTL
	// ms, task id, fence lifetime ms, read state ("1": return the job's
	// state as it was before this begin, first moving a state found only
	// under the legacy key to the present one), requeue generation (for
	// that move). Expired intents of the field are removed on the way.
	// Returns {verdict, n, RequestId, state}: superseded (n = applied
	// version), busy (n = the lock's PTTL), go, done (this version was
	// applied; the RequestId of that call), blocked (n = the newer version
	// in doubt); state is the job state's fields and values (empty unless
	// asked for). Run twice for one attempt (go-redis sends a command again
	// when its reply is lost), the second run leaves out the first's attempt
	// marker, which is no crash; a crash the first run found it keeps as
	// ambiguous=1 in the state.
	fenceBegin = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, v, task = ARGV[1], tonumber(ARGV[2]), ARGV[6]
local st = {}
if ARGV[8] == '1' then
  st = redis.call('HGETALL', KEYS[3])
  if #st == 0 then
    local old = redis.call('HGETALL', KEYS[4])
    if #old > 0 then
      redis.call('HSET', KEYS[3], unpack(old))
      redis.call('HSET', KEYS[3], 'gen', ARGV[9])
      st = redis.call('HGETALL', KEYS[3])
    end
  end
end
local crashed = false
if #st > 0 then
  -- A begin that ran before for this attempt (a command sent again after
  -- its reply was lost) took the lock with our token: its own marker is
  -- no crash. A crash it saw is kept as ambiguous=1 (below).
  local again = redis.call('GET', KEYS[2]) == ARGV[3]
  local kept = {}
  for i = 1, #st, 2 do
    local mine = st[i] == 'inflight' and again
    if st[i] == 'inflight' then crashed = not again end
    if not mine then kept[#kept + 1] = st[i]; kept[#kept + 1] = st[i + 1] end
  end
  st = kept
end
local fields = redis.call('HGETALL', KEYS[1])
local applied, rid = tonumber('0'), ''
for i = 1, #fields, 2 do
  if fields[i] == op then applied = tonumber(fields[i + 1])
  elseif fields[i] == 'r:' .. op then rid = fields[i + 1] end
end
if applied > v then return {0, applied, '', st} end
if applied == v then return {3, applied, rid, st} end
local pre = 'i:' .. op .. ':'
local mine = pre .. task
for i = 1, #fields, 2 do
  local k = fields[i]
  if k ~= mine and string.sub(k, 1, #pre) == pre then
    local iv, idl = string.match(fields[i + 1], '^(%d+)|(%d+)$')
    if not iv or tonumber(idl) <= now then
      redis.call('HDEL', KEYS[1], k)
    elseif tonumber(iv) > v then
      return {4, tonumber(iv), '', st}
    end
  end
end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[3] then return {1, redis.call('PTTL', KEYS[2]), '', st} end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[1], mine, ARGV[2] .. '|' .. (now + tonumber(ARGV[5])))
redis.call('PEXPIRE', KEYS[1], ARGV[7])
local seen = false
for i = 1, #st, 2 do
  if st[i] == 'first_seen' then seen = true end
end
if ARGV[8] ~= '1' then
  redis.call('HSET', KEYS[3], 'inflight', now)
  redis.call('HSETNX', KEYS[3], 'first_seen', now)
elseif seen then
  redis.call('HSET', KEYS[3], 'inflight', now)
else
  redis.call('HSET', KEYS[3], 'inflight', now, 'first_seen', now)
end
if crashed then redis.call('HSET', KEYS[3], 'ambiguous', '1') end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return {2, applied, '', st}`)

	// fenceCommit KEYS: fence, lock, state. ARGV: op, version, token,
	// RequestId, keep state ("1": keep the job's state, for a job whose
	// version lives only there), fence lifetime ms. Records the version if it is newer,
	// resolves the field's intents up to it (an older call in doubt ended
	// before this one began, so this value lands after it), releases the
	// lock if ours, and ends the job's state. Returns the version applied
	// before. Running it twice is harmless.
	fenceCommit = redis.NewScript(`
local op, v = ARGV[1], tonumber(ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
local applied = tonumber('0')
for i = 1, #fields, 2 do
  if fields[i] == op then applied = tonumber(fields[i + 1]) end
end
if v > applied then redis.call('HSET', KEYS[1], op, ARGV[2], 'r:' .. op, ARGV[4]) end
if v > applied or #fields > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
local pre = 'i:' .. op .. ':'
for i = 1, #fields, 2 do
  local k = fields[i]
  if string.sub(k, 1, #pre) == pre then
    local iv = tonumber(string.match(fields[i + 1], '^(%d+)|') or '0')
    if iv <= v then redis.call('HDEL', KEYS[1], k) end
  end
end
local cur = redis.call('GET', KEYS[2])
if cur == ARGV[3] or cur == 'hold:' .. ARGV[3] then redis.call('DEL', KEYS[2]) end
if ARGV[5] == '1' then
  redis.call('HDEL', KEYS[3], 'inflight')
  redis.call('HSET', KEYS[3], 'ambiguous', '0')
else
  redis.call('DEL', KEYS[3])
end
return applied`)

	// fenceEnd KEYS: fence, lock, state. ARGV: op, version, token, task,
	// lock ("release", or "hold" to keep it ARGV[6] ms more), hold ms,
	// clear intent ("1"), state ("record", "drop" or "keep"), counted
	// ("1"), ambiguous ("1"), code, message, RequestId, state TTL ms.
	// Ends an attempt that applied nothing for certain, or whose outcome
	// is unknown; returns the counted attempts so far.
	fenceEnd = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  if ARGV[5] == 'hold' then
    redis.call('SET', KEYS[2], 'hold:' .. ARGV[3], 'PX', ARGV[6])
  else
    redis.call('DEL', KEYS[2])
  end
end
if ARGV[7] == '1' then redis.call('HDEL', KEYS[1], 'i:' .. op .. ':' .. ARGV[4]) end
if ARGV[8] == 'drop' then
  redis.call('DEL', KEYS[3])
  return 0
end
redis.call('HDEL', KEYS[3], 'inflight')
if ARGV[8] == 'record' then
  if ARGV[9] == '1' then redis.call('HINCRBY', KEYS[3], 'attempts', 1) end
  if ARGV[10] == '1' then redis.call('HSET', KEYS[3], 'ambiguous', '1') end
  redis.call('HSET', KEYS[3], 'last_code', ARGV[11], 'last_message', ARGV[12], 'last_request_id', ARGV[13], 'last_failure', now)
  redis.call('HSETNX', KEYS[3], 'first_failure', now)
  redis.call('HSETNX', KEYS[3], 'first_seen', now)
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[14]) end
return tonumber(redis.call('HGET', KEYS[3], 'attempts') or '0')`)
)

type fenceVerdict int

const (
	fenceSuperseded fenceVerdict = iota // a newer version was applied
	fenceBusy                           // another job holds the binding
	fenceGo                             // the lock is ours: call the API
	fenceDone                           // this version was already applied
	fenceBlocked                        // a newer version's call may have applied: wait for it to settle
)

type fence struct {
	rdb      redis.UniversalClient
	prefix   string
	lockTTL  time.Duration // above the limiter wait, the call and the check
	stateTTL time.Duration // a job state's lifetime, and an intent's
}

func (f *fence) keys(subsID string) (fk, lk string) {
	return tasks.FenceKey(f.prefix, subsID), tasks.LockKey(f.prefix, subsID)
}

// beginResult is the fence's answer to a job that wants to call.
type beginResult struct {
	verdict   fenceVerdict
	n         int64  // applied version, lock PTTL (busy) or version in doubt (blocked)
	requestID string // for fenceDone: the RequestId of the call that applied it
	// state is the job's state hash as the begin found it, when asked
	// for (j.stateLater); empty when there is none.
	state map[string]string
}

// begin runs the begin script for attempt token of job j. When
// j.stateLater, it also reads the job's state (requeue generation 0).
func (f *fence) begin(ctx context.Context, j *job, token string) (beginResult, error) {
	fk, lk := f.keys(j.u.SubsId)
	legacy := legacyJobStateKey(f.prefix, j.u.SubsId, j.id, 0)
	vals, err := fenceBegin.Run(ctx, f.rdb, []string{fk, lk, j.st.key, legacy}, j.u.OperateType, j.version, token,
		f.lockTTL.Milliseconds(), f.stateTTL.Milliseconds(), j.id, tasks.FenceLifetime.Milliseconds(),
		boolArg(j.stateLater), 0).Slice()
	if err != nil {
		return beginResult{}, err
	}
	if len(vals) != 3 && len(vals) != 4 {
		return beginResult{}, fmt.Errorf("fence begin: unexpected reply %v", vals)
	}
	v, _ := vals[0].(int64)
	n, _ := vals[1].(int64)
	rid, _ := vals[2].(string)
	b := beginResult{verdict: fenceVerdict(v), n: n, requestID: rid, state: map[string]string{}}
	if len(vals) == 4 {
		kv, _ := vals[3].([]any)
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			b.state[k], _ = kv[i+1].(string)
		}
	}
	return b, nil
}

// commit records j's version as applied, with the call's RequestId. It
// returns the version applied before.
//
// With a result (not nil), the same round trip also stores it as the
// job's asynq result, as asynq's ResultWriter would (HSET of the task's
// key, field "result"): a pipeline, since the task's key is in its queue's
// Cluster slot, not the binding's. Both commands are sent whatever the
// other's fate; resultErr is the result's own error. asynq shows a task's
// result in any state, so a result stored while the commit failed is
// removed (dropResult), and the handler sends one only when the commit
// cannot find the job superseded (it holds the lock) and a failed report
// can still run again (not asynq's last try): see docs/ARCHITECTURE.md,
// "The fence".
func (f *fence) commit(ctx context.Context, j *job, token, requestID string, result []byte) (prev int64, resultErr, err error) {
	fk, lk := f.keys(j.u.SubsId)
	keys := []string{fk, lk, j.st.key}
	args := []any{j.u.OperateType, j.version, token, requestID, boolArg(j.versionInState()), tasks.FenceLifetime.Milliseconds()}
	if result == nil {
		prev, err = fenceCommit.Run(ctx, f.rdb, keys, args...).Int64()
		return prev, nil, err
	}
	pipe := f.rdb.Pipeline()
	c := fenceCommit.EvalSha(ctx, pipe, keys, args...)
	w := pipe.HSet(ctx, asynqTaskKey(j.queue, j.id), "result", result)
	_, _ = pipe.Exec(ctx)
	if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
		// Redis does not know the script yet (it restarted, or this is
		// the first commit): send its text. The commit is idempotent.
		c = fenceCommit.Run(ctx, f.rdb, keys, args...)
	}
	prev, err = c.Int64()
	return prev, w.Err(), err
}

// appliedAt reports whether the fence records j's version as its field's
// applied version, and the RequestId of the call that applied it: a read
// only, which takes no lock.
func (f *fence) appliedAt(ctx context.Context, j *job) (bool, string, error) {
	fk, _ := f.keys(j.u.SubsId)
	vals, err := f.rdb.HMGet(ctx, fk, j.u.OperateType, "r:"+j.u.OperateType).Result()
	if err != nil {
		return false, "", err
	}
	v, _ := vals[0].(string)
	rid, _ := vals[1].(string)
	return j.version > 0 && v == strconv.FormatInt(j.version, 10), rid, nil
}

// dropResult removes, best effort, the result stored for j's task (a
// commit that failed after its result was stored).
func (f *fence) dropResult(ctx context.Context, j *job) {
	_ = f.rdb.HDel(ctx, asynqTaskKey(j.queue, j.id), "result").Err()
}

// How fence.end leaves the job's state ([attemptEnd.state]); the end
// script compares ARGV[8] with these.
const (
	endRecord = "record" // clear the in-flight mark and record the attempt's failure
	endDrop   = "drop"   // delete the state: the job ended
	endKeep   = "keep"   // clear the in-flight mark only
)

// attemptEnd says how fence.end leaves the binding and the job's state.
type attemptEnd struct {
	token       string // the attempt's lock token; "" when it took none
	hold        time.Duration
	clearIntent bool   // nothing of this job can have been applied, or the job ended
	state       string // endRecord, endDrop or endKeep
	counted     bool
	ambiguous   bool
	code, msg   string
	requestID   string
}

// end ends an attempt that did not apply its update for certain; it
// returns the job's counted attempts so far.
func (f *fence) end(ctx context.Context, j *job, e attemptEnd) (int, error) {
	fk, lk := f.keys(j.u.SubsId)
	lockMode := "release"
	if e.hold > 0 {
		lockMode = "hold"
	}
	n, err := fenceEnd.Run(ctx, f.rdb, []string{fk, lk, j.st.key}, j.u.OperateType, j.version, e.token, j.id,
		lockMode, max(e.hold.Milliseconds(), 1), boolArg(e.clearIntent), e.state, boolArg(e.counted),
		boolArg(e.ambiguous), e.code, e.msg, e.requestID, f.stateTTL.Milliseconds()).Int64()
	return int(n), err
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
