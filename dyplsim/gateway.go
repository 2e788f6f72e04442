package dyplsim

import (
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const nonceShards = 16

// nonceStore remembers SignatureNonce values (as 64-bit hashes) for at least
// MaxClockSkew, within a fixed capacity. Each shard keeps a current and a
// previous generation; the previous one is dropped when the current one is
// older than the window or full.
type nonceStore struct {
	seed     maphash.Seed
	window   time.Duration
	perShard int // capacity of one generation of one shard
	shards   [nonceShards]nonceShard
}

type nonceShard struct {
	mu        sync.Mutex
	cur, prev map[uint64]struct{}
	started   time.Time // when cur became current
	_         [40]byte  // keep shards on separate cache lines
}

func newNonceStore(capacity int, window time.Duration) *nonceStore {
	n := &nonceStore{seed: maphash.MakeSeed(), window: window, perShard: max(1, capacity/nonceShards/2)}
	n.reset()
	return n
}

func (n *nonceStore) reset() {
	for i := range n.shards {
		sh := &n.shards[i]
		sh.mu.Lock()
		sh.cur, sh.prev, sh.started = make(map[uint64]struct{}), nil, time.Time{}
		sh.mu.Unlock()
	}
}

// seen records nonce and reports whether it had been recorded before.
func (n *nonceStore) seen(nonce string, now time.Time) bool {
	h := maphash.String(n.seed, nonce)
	sh := &n.shards[h%nonceShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.started.IsZero() {
		sh.started = now
	}
	if now.Sub(sh.started) >= n.window || len(sh.cur) >= n.perShard {
		sh.prev, sh.cur, sh.started = sh.cur, make(map[uint64]struct{}, len(sh.cur)/2), now
	}
	if _, ok := sh.cur[h]; ok {
		return true
	}
	if _, ok := sh.prev[h]; ok {
		return true
	}
	sh.cur[h] = struct{}{}
	return false
}

// quota holds the token buckets of every AccessKeyId. The value is
// replaced as a whole when limits change, so the hot path takes no lock
// besides the bucket's own.
type quota struct {
	qps, qqps     float64
	burst, qburst int
	update, query map[string]*rate.Limiter // by AccessKeyId; nil when unlimited
}

func newQuota(aks map[string]*signer, qps float64, burst int, qqps float64, qburst int) *quota {
	q := &quota{qps: qps, burst: defaultBurst(qps, burst), qqps: qqps, qburst: defaultBurst(qqps, qburst)}
	keys := append(slices.Collect(maps.Keys(aks)), stsPrincipal)
	if qps > 0 {
		q.update = make(map[string]*rate.Limiter, len(keys))
		for _, ak := range keys {
			q.update[ak] = rate.NewLimiter(rate.Limit(qps), q.burst)
		}
	}
	if qqps > 0 {
		q.query = make(map[string]*rate.Limiter, len(keys))
		for _, ak := range keys {
			q.query[ak] = rate.NewLimiter(rate.Limit(qqps), q.qburst)
		}
	}
	return q
}

// allow takes a token for ak; when none is left it reports how long until
// one is (at least 1 ms).
func (q *quota) allow(ak string, update bool) (ok bool, limit float64, left time.Duration) {
	m, limit := q.query, q.qqps
	if update {
		m, limit = q.update, q.qps
	}
	lim := m[ak]
	if lim == nil {
		return true, 0, 0
	}
	now := time.Now()
	if lim.AllowN(now, 1) {
		return true, limit, 0
	}
	need := 1 - lim.TokensAt(now)
	left = time.Duration(math.Ceil(need / limit * float64(time.Second)))
	return false, limit, max(left, time.Millisecond)
}
