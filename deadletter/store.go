package deadletter

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/mask"
)

// Store keeps dead-letter records in Redis. Each record is one string key,
// <prefix>:{dlq}:rec:<task id>, holding its JSON; the ZSET
// <prefix>:{dlq}:index lists every task id scored by DiedAt in Unix
// milliseconds. Both carry the hash tag {dlq}, so they share one Redis
// Cluster slot and every write changes a record and its index entry
// together, in one transaction or script: there is never a record the index
// does not list. Keys have no TTL.
//
// Records written by earlier versions (<prefix>:dlq:rec:<id> and
// <prefix>:dlq:index, in two slots) are moved into this layout by
// [Store.Each] and by the sweep; see [Store.Migrate].
type Store struct {
	// Redis is the server holding the records.
	Redis redis.UniversalClient
	// Prefix starts every key; empty means [tasks.DefaultKeyPrefix].
	Prefix string
}

// pageSize is how many index entries or records one command reads.
const pageSize = 500

// maxWatchRetries bounds the optimistic-lock retries of Put.
const maxWatchRetries = 20

// Put writes r. It is idempotent per TaskID: writing a record again merges
// it with the stored one, keeping the earliest FirstFailure and DiedAt, the
// latest LastFailure and the largest Attempts, and taking every other
// non-empty field from r. Message is masked again as a safeguard. A zero
// DiedAt means now. The record and its index entry are written in one
// transaction.
func (s *Store) Put(ctx context.Context, r Record) error {
	_, err := s.PutNew(ctx, r)
	return err
}

// PutNew is [Store.Put], and also reports whether the task had no record
// before (a new dead letter rather than a merge).
func (s *Store) PutNew(ctx context.Context, r Record) (created bool, err error) {
	if r.TaskID == "" {
		return false, errors.New("deadletter: record without a task id")
	}
	r.Message = mask.Text(r.Message)
	if r.DiedAt.IsZero() {
		r.DiedAt = time.Now()
	}
	key := s.RecordKey(r.TaskID)
	txf := func(tx *redis.Tx) error {
		merged := r
		old, err := tx.Get(ctx, key).Bytes()
		created = errors.Is(err, redis.Nil)
		switch {
		case created:
		case err != nil:
			return err
		default:
			var prev Record
			if json.Unmarshal(old, &prev) == nil {
				merged = merge(prev, r)
			}
		}
		b, err := encode(merged)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, b, 0)
			p.ZAdd(ctx, s.IndexKey(), redis.Z{Score: score(merged), Member: merged.TaskID})
			return nil
		})
		return err
	}
	for range maxWatchRetries {
		if err = s.Redis.Watch(ctx, txf, key); !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("deadletter: write record %s: %w", r.TaskID, err)
	}
	return created, nil
}

// score is r's score in the index.
func score(r Record) float64 { return float64(r.DiedAt.UnixMilli()) }

// putRawIfAbsent writes b as taskID's record, record and index entry
// together, only when taskID has no record yet. It returns b when it wrote
// it, nil when it wrote nothing.
func (s *Store) putRawIfAbsent(ctx context.Context, taskID string, b []byte, score float64) ([]byte, error) {
	n, err := putIfAbsentScript.Run(ctx, s.Redis, []string{s.RecordKey(taskID), s.IndexKey()}, b, score, taskID).Int()
	if err != nil {
		return nil, fmt.Errorf("deadletter: write record %s: %w", taskID, err)
	}
	if n == 0 {
		return nil, nil
	}
	return b, nil
}

// putIfAbsentScript: KEYS record, index; ARGV JSON, score, task id.
var putIfAbsentScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("SET", KEYS[1], ARGV[1])
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[3])
return 1`)

// putAdopted writes r, the record the sweep makes for an archived task of
// queue, record and index entry together, only when the task has no record
// yet, and lists it among the adoptions (AdoptKey) in the same script. It
// returns the adoption's entry (the SHA-1 of the bytes written, then the
// queue), "" when it wrote nothing.
func (s *Store) putAdopted(ctx context.Context, r Record, queue string) (string, error) {
	if r.DiedAt.IsZero() {
		r.DiedAt = time.Now()
	}
	r.Message = mask.Text(r.Message)
	b, err := encode(r)
	if err != nil {
		return "", err
	}
	sum := sha1.Sum(b)
	entry := hex.EncodeToString(sum[:]) + queue
	n, err := adoptScript.Run(ctx, s.Redis, []string{s.RecordKey(r.TaskID), s.IndexKey(), s.AdoptKey()},
		b, score(r), r.TaskID, entry).Int()
	if err != nil {
		return "", fmt.Errorf("deadletter: write record %s: %w", r.TaskID, err)
	}
	if n == 0 {
		return "", nil
	}
	return entry, nil
}

// adoptedQueue is the queue named in an adoption's entry.
func adoptedQueue(entry string) string {
	if len(entry) < sha1.Size*2 {
		return ""
	}
	return entry[sha1.Size*2:]
}

// settleAdopted ends the adoption of taskID if it still is entry; with
// drop it first deletes the record, with its index entry, if it still holds
// the bytes the sweep wrote.
func (s *Store) settleAdopted(ctx context.Context, taskID, entry string, drop bool) error {
	d := "0"
	if drop {
		d = "1"
	}
	err := settleScript.Run(ctx, s.Redis, []string{s.RecordKey(taskID), s.IndexKey(), s.AdoptKey()}, taskID, entry, d).Err()
	if err != nil {
		return fmt.Errorf("deadletter: settle the record %s the sweep wrote: %w", taskID, err)
	}
	return nil
}

// adoptions returns the adoptions not settled yet: task id → entry.
func (s *Store) adoptions(ctx context.Context) (map[string]string, error) {
	m, err := s.Redis.HGetAll(ctx, s.AdoptKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("deadletter: read the records the sweep wrote: %w", err)
	}
	return m, nil
}

// adoptScript: KEYS record, index, adoptions; ARGV JSON, score, task id,
// entry.
var adoptScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("SET", KEYS[1], ARGV[1])
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[3])
redis.call("HSET", KEYS[3], ARGV[3], ARGV[4])
return 1`)

// settleScript: KEYS record, index, adoptions; ARGV task id, entry, drop.
var settleScript = redis.NewScript(`
if redis.call("HGET", KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == "1" then
	local v = redis.call("GET", KEYS[1])
	if v and redis.sha1hex(v) == string.sub(ARGV[2], 1, 40) then
		redis.call("DEL", KEYS[1])
		redis.call("ZREM", KEYS[2], ARGV[1])
	end
end
redis.call("HDEL", KEYS[3], ARGV[1])
return 1`)

// reindex lists r's task in the index, scored by DiedAt, if its record
// exists and the index lacks it. It reports whether it added an entry.
func (s *Store) reindex(ctx context.Context, r Record) (bool, error) {
	n, err := reindexScript.Run(ctx, s.Redis, []string{s.RecordKey(r.TaskID), s.IndexKey()}, score(r), r.TaskID).Int()
	if err != nil {
		return false, fmt.Errorf("deadletter: index record %s: %w", r.TaskID, err)
	}
	return n == 1, nil
}

// reindexScript: KEYS record, index; ARGV score, task id.
var reindexScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
return redis.call("ZADD", KEYS[2], "NX", ARGV[1], ARGV[2])`)

// merge combines a stored record with a new write of the same task.
func merge(prev, r Record) Record {
	out := r
	out.FirstFailure = earliest(prev.FirstFailure, r.FirstFailure)
	out.DiedAt = earliest(prev.DiedAt, r.DiedAt)
	if prev.LastFailure.After(r.LastFailure) {
		out.LastFailure = prev.LastFailure
	}
	out.Attempts = max(prev.Attempts, r.Attempts)
	keep := func(dst *string, old string) {
		if *dst == "" {
			*dst = old
		}
	}
	keep(&out.Queue, prev.Queue)
	keep(&out.Type, prev.Type)
	keep(&out.Code, prev.Code)
	keep(&out.Message, prev.Message)
	keep(&out.RequestID, prev.RequestID)
	keep(&out.Class, prev.Class)
	keep(&out.Reason, prev.Reason)
	keep(&out.SubsId, prev.SubsId)
	keep(&out.OperateType, prev.OperateType)
	keep(&out.Batch, prev.Batch)
	if out.Version == 0 {
		out.Version = prev.Version
	}
	if out.Line == 0 {
		out.Line = prev.Line
	}
	out.Ambiguous = out.Ambiguous || prev.Ambiguous
	if len(out.Payload) == 0 {
		out.Payload = prev.Payload
	}
	return out
}

// earliest returns the earlier of two times, ignoring zero ones.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	default:
		return b
	}
}

// Get returns the record of taskID, and false when there is none.
func (s *Store) Get(ctx context.Context, taskID string) (Record, bool, error) {
	b, err := s.Redis.Get(ctx, s.RecordKey(taskID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("deadletter: read record %s: %w", taskID, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, false, fmt.Errorf("deadletter: record %s is unreadable: %w", taskID, err)
	}
	return r, true, nil
}

// Delete removes the records of taskIDs, each with its index entry; ids
// without a record are ignored. It deletes whatever is stored: requeue and
// purge delete a record only as they read it (deleteIfUnchanged).
func (s *Store) Delete(ctx context.Context, taskIDs ...string) error {
	for len(taskIDs) > 0 {
		n := min(len(taskIDs), pageSize)
		chunk := taskIDs[:n]
		taskIDs = taskIDs[n:]
		members := make([]any, len(chunk))
		_, err := s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				p.Del(ctx, s.RecordKey(id))
				members[i] = id
			}
			p.ZRem(ctx, s.IndexKey(), members...)
			return nil
		})
		if err != nil {
			return fmt.Errorf("deadletter: delete records: %w", err)
		}
	}
	return nil
}

// DeleteOf deletes taskID's record, with its index entry, if it stands for
// the job of version (a record without a version: the job of payload), as
// it read it. A record of another job given the same task id later (an
// idempotency key or a CLI batch line used again once asynq forgot the dead
// task) stays, and so does one written meanwhile. It reports whether it
// deleted.
func (s *Store) DeleteOf(ctx context.Context, taskID string, version int64, payload []byte) (bool, error) {
	b, err := s.raw(ctx, taskID)
	if err != nil || b == nil {
		return false, err
	}
	var r Record
	if json.Unmarshal(b, &r) != nil || !r.of(version, payload) {
		return false, nil
	}
	return s.deleteIfUnchanged(ctx, taskID, b)
}

// of reports whether r stands for the job of version, or, when r has no
// version, of payload.
func (r Record) of(version int64, payload []byte) bool {
	if r.Version != 0 {
		return r.Version == version
	}
	return len(r.Payload) > 0 && bytes.Equal(r.Payload, payload)
}

// deleteIfUnchanged deletes the record of taskID, with its index entry,
// only if it still holds stored, the raw value read earlier, so a record
// written meanwhile (the job died again) survives. It reports whether it
// deleted.
func (s *Store) deleteIfUnchanged(ctx context.Context, taskID string, stored []byte) (bool, error) {
	n, err := delIfEqual.Run(ctx, s.Redis, []string{s.RecordKey(taskID), s.IndexKey()}, stored, taskID).Int()
	if err != nil {
		return false, fmt.Errorf("deadletter: delete record %s: %w", taskID, err)
	}
	return n == 1, nil
}

// delIfEqual: KEYS record, index; ARGV expected JSON, task id.
var delIfEqual = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("DEL", KEYS[1])
	redis.call("ZREM", KEYS[2], ARGV[2])
	return 1
end
return 0`)

// raw returns the stored JSON of taskID's record, nil when there is none.
func (s *Store) raw(ctx context.Context, taskID string) ([]byte, error) {
	b, err := s.Redis.Get(ctx, s.RecordKey(taskID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// Count returns the number of records.
func (s *Store) Count(ctx context.Context) (int64, error) {
	n, err := s.Redis.ZCard(ctx, s.IndexKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("deadletter: count records: %w", err)
	}
	return n, nil
}

// Oldest returns the DiedAt of the oldest record, and false when there are
// none.
func (s *Store) Oldest(ctx context.Context) (time.Time, bool, error) {
	zs, err := s.Redis.ZRangeWithScores(ctx, s.IndexKey(), 0, 0).Result()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("deadletter: oldest record: %w", err)
	}
	if len(zs) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(zs[0].Score)), true, nil
}
