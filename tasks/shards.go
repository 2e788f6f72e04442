package tasks

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A queue may be split into shards: queues of their own, each in its own
// Redis Cluster slot, so that no one node carries every job's queue work.
// A binding's updates always go to the same shard (chosen by SubsId), so
// they are taken in the order they were queued, as in one queue. The shard
// count of a queue is kept in Redis ([ShardsKey]), written by the workers
// that split it (WORKER_SHARDS) and read by every producer that routes
// (the enqueue CLI, [Producer], the HTTP API) and by the operator
// commands; docs/ARCHITECTURE.md ("Queue shards") has the whole story.

// MaxShards is the most shards a queue may be split into.
const MaxShards = 64

// Layout is how one queue is split: Shards queues named by [ShardName], or,
// with Shards 0 or 1, the queue itself.
type Layout struct {
	Queue  string // the queue's name, as producers and operators give it
	Shards int    // its shard count; 0 or 1: not split
}

// Sharded reports whether the queue is split.
func (l Layout) Sharded() bool { return l.Shards > 1 }

// Names returns the queues a worker serving the queue serves: the queue
// itself (plain asynq producers and older producers still queue to it) and
// every shard.
func (l Layout) Names() []string {
	out := []string{l.Queue}
	for i := 0; l.Sharded() && i < l.Shards; i++ {
		out = append(out, ShardName(l.Queue, i, l.Shards))
	}
	return out
}

// QueueFor returns the queue an update of binding subsID goes to: its
// shard, or the queue itself when the queue is not split.
func (l Layout) QueueFor(subsID string) string {
	if !l.Sharded() {
		return l.Queue
	}
	return ShardName(l.Queue, ShardOf(subsID, l.Shards), l.Shards)
}

// IsShard reports whether name is named as a shard of queue, of any
// split: "<queue>.<i>" or "<queue>.<i>-<k>".
func IsShard(name, queue string) bool {
	rest, ok := strings.CutPrefix(name, queue+".")
	if !ok {
		return false
	}
	i, k, found := strings.Cut(rest, "-")
	if !allDigits(i) {
		return false
	}
	return !found || allDigits(k)
}

// Shards returns the queues of known named as shards of queue, of any
// split (see IsShard), in known's order.
func Shards(known []string, queue string) []string {
	var out []string
	for _, k := range known {
		if IsShard(k, queue) {
			out = append(out, k)
		}
	}
	return out
}

// Holders returns the queues that may hold jobs of l's queue: l's names
// (the split in force), then every queue of known named as a shard of it
// that l does not name (a shard of an earlier split, which keeps its jobs
// until they run). known is the queues asynq knows (Inspector.Queues).
func (l Layout) Holders(known []string) []string {
	out := l.Names()
	for _, k := range Shards(known, l.Queue) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// ShardBase returns the queue that name is named as a shard of, and
// whether it is one ("<queue>.<i>" or "<queue>.<i>-<k>").
func ShardBase(name string) (string, bool) {
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return "", false
	}
	base := name[:dot]
	return base, IsShard(name, base)
}

// ShardOf returns the shard, 0 to n-1, of binding subsID among n: FNV-1a of
// the SubsId modulo n.
func ShardOf(subsID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(subsID))
	return int(h.Sum32() % uint32(n))
}

// ShardName returns the name of shard i of queue split n ways:
// "<queue>.<i>", or "<queue>.<i>-<k>" with the smallest k that puts the
// shard's keys (asynq's, hash-tagged by the queue name) in the i-th n-th
// of Redis Cluster's 16,384 slots, away from its edges. A cluster whose
// slots are split evenly among its masters, as redis-cli --cluster create
// splits them, then holds shards on as many masters as it can.
func ShardName(queue string, i, n int) string {
	key := shardKey{queue, i, n}
	if name, ok := shardNames.Load(key); ok {
		return name.(string)
	}
	name := shardName(queue, i, n)
	shardNames.Store(key, name)
	return name
}

// shardNames caches [ShardName], which may try a hundred names.
var shardNames sync.Map

type shardKey struct {
	queue string
	i, n  int
}

func shardName(queue string, i, n int) string {
	lo, hi := i*slotCount/n, (i+1)*slotCount/n
	margin := (hi - lo) / 8
	base := queue + "." + strconv.Itoa(i)
	name := base
	for k := 1; k < 100000; k++ {
		if s := Slot(name); s >= lo+margin && s < hi-margin {
			return name
		}
		name = base + "-" + strconv.Itoa(k)
	}
	return base
}

// slotCount is the number of Redis Cluster hash slots.
const slotCount = 16384

// Slot returns the Redis Cluster slot of the keys of asynq queue queue
// ("asynq:{<queue>}:…"): CRC16-CCITT (XMODEM) of the name, modulo 16,384.
func Slot(queue string) int {
	var crc uint16
	for i := 0; i < len(queue); i++ {
		crc ^= uint16(queue[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % slotCount
}

// ReadLayout returns the layout of queue from Redis. Shards is 1 for a
// queue that was split and merged back, 0 for one never split.
func ReadLayout(ctx context.Context, rdb redis.UniversalClient, prefix, queue string) (Layout, error) {
	n, err := rdb.HGet(ctx, ShardsKey(prefix), queue).Int()
	if errors.Is(err, redis.Nil) {
		return Layout{Queue: queue}, nil
	}
	if err != nil {
		return Layout{}, fmt.Errorf("tasks: read the shard count of queue %s: %w", queue, err)
	}
	return Layout{Queue: queue, Shards: n}, nil
}

// ReadLayouts returns the layout of every split queue.
func ReadLayouts(ctx context.Context, rdb redis.UniversalClient, prefix string) (map[string]Layout, error) {
	m, err := rdb.HGetAll(ctx, ShardsKey(prefix)).Result()
	if err != nil {
		return nil, fmt.Errorf("tasks: read the queue shard counts: %w", err)
	}
	out := make(map[string]Layout, len(m))
	for q, v := range m {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			continue
		}
		out[q] = Layout{Queue: q, Shards: n}
	}
	return out, nil
}

// setShards sets the shard count of a queue from old to n (0: delete it),
// unless another writer changed it first.
var setShards = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
if cur < 2 then cur = 0 end
if cur ~= tonumber(ARGV[2]) then return cur end
local n = tonumber(ARGV[3])
if n < 2 then redis.call('HSET', KEYS[1], ARGV[1], 1) else redis.call('HSET', KEYS[1], ARGV[1], n) end
if n < 2 then return 0 end
return n
`)

// SetShards changes the shard count of queue from old (0 or 1: not split)
// to n (0 or 1: not split) and returns the count Redis holds afterwards
// (0: not split), which is not n when another worker changed it first. A
// queue split once and merged back keeps the count 1, so that a job of one
// of its shards can still be told from a queue merely named like one (see
// [ReadLayout]). The caller checks that no job is left in a queue of the
// old layout; see [Layout.Names].
func SetShards(ctx context.Context, rdb redis.UniversalClient, prefix, queue string, old, n int) (int, error) {
	n, old = max(n, 0), max(old, 0)
	if n > MaxShards {
		return 0, fmt.Errorf("tasks: queue %s: %d shards is more than %d", queue, n, MaxShards)
	}
	got, err := setShards.Run(ctx, rdb, []string{ShardsKey(prefix)}, queue, strconv.Itoa(old), strconv.Itoa(n)).Int()
	if err != nil {
		return 0, fmt.Errorf("tasks: set the shard count of queue %s: %w", queue, err)
	}
	return got, nil
}
