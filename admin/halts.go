// Package admin controls dyplsq's queues and tracks halted workers, for the
// enqueue CLI (queue pause, resume and status) and the worker.
//
// A worker that meets a code failing every job (bad credentials, a closed
// account) halts: it stops calling the API, reports the halt here and keeps
// refreshing it while it probes for recovery. Halts of workers that died
// while halted go stale and are dropped. Staleness is judged by Redis's
// clock alone: a worker or a reader whose clock is off neither hides a live
// halt nor keeps a dead one.
package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultStaleAfter is how long a halt lives without a refresh when
// [Halts.StaleAfter] is zero.
const DefaultStaleAfter = time.Minute

// Halt is one halted worker.
type Halt struct {
	// Worker identifies the worker process (unique in the fleet); Host and
	// PID say where it runs.
	Worker, Host string
	PID          int
	// Code is the failure code that halted it, Message its text (phone
	// numbers masked by the reporter), Hint what to check (the setting to
	// fix).
	Code, Message, Hint string
	// Since is when the worker halted; UpdatedAt when it last reported;
	// NextProbe when it will try the API again.
	Since, UpdatedAt, NextProbe time.Time
}

// Halts keeps the halts of the fleet in one Redis hash, <prefix>:halts,
// mapping each worker to the JSON of its [Halt] plus "seen_ms": when Redis
// stored that report, by Redis's own clock.
type Halts struct {
	// Redis is the server holding the hash.
	Redis redis.UniversalClient
	// Prefix starts the key; empty means [tasks.DefaultKeyPrefix].
	Prefix string
	// StaleAfter drops halts not refreshed for this long by Redis's clock
	// (the worker died while halted); zero means [DefaultStaleAfter].
	StaleAfter time.Duration
}

func (h *Halts) staleAfter() time.Duration {
	if h.StaleAfter > 0 {
		return h.StaleAfter
	}
	return DefaultStaleAfter
}

// Report records or refreshes the halt of x.Worker. A zero UpdatedAt means
// now, and a zero Since means UpdatedAt: both are the reporter's clock, for
// people to read. Redis stamps the report with its own time, which alone
// decides staleness. The worker calls it when it halts and every few
// seconds while halted, well within StaleAfter.
func (h *Halts) Report(ctx context.Context, x Halt) error {
	if x.Worker == "" {
		return errors.New("admin: halt without a worker name")
	}
	if x.UpdatedAt.IsZero() {
		x.UpdatedAt = time.Now()
	}
	if x.Since.IsZero() {
		x.Since = x.UpdatedAt
	}
	b, err := json.Marshal(x)
	if err != nil {
		return err
	}
	if err := reportScript.Run(ctx, h.Redis, []string{h.Key()}, x.Worker, b).Err(); err != nil {
		return fmt.Errorf("admin: report halt: %w", err)
	}
	return nil
}

// Clear removes the halt of worker, when it resumes.
func (h *Halts) Clear(ctx context.Context, worker string) error {
	if err := h.Redis.HDel(ctx, h.Key(), worker).Err(); err != nil {
		return fmt.Errorf("admin: clear halt: %w", err)
	}
	return nil
}

// redisNow is Lua that sets now to Redis's time in milliseconds. Redis
// replicates a script's effects, so reading TIME before a write is safe.
const redisNow = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// reportScript stores a halt (ARGV[2], a JSON object) for worker ARGV[1],
// adding "seen_ms": Redis's time now. Readers that do not know the field
// ignore it.
var reportScript = redis.NewScript(redisNow + `
redis.call('HSET', KEYS[1], ARGV[1], '{"seen_ms":' .. string.format('%.0f', now) .. ',' .. string.sub(ARGV[2], 2))
return 1`)

// listScript returns Redis's time in milliseconds, then the hash's fields
// and values: one clock for every reader, on the node holding the hash.
var listScript = redis.NewScript(redisNow + `
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, string.format('%.0f', now))
return out`)

// storedHalt is a halt as stored: the [Halt] and when Redis saw it.
type storedHalt struct {
	Halt
	SeenMs int64 `json:"seen_ms"`
}

// removeIfUnchanged deletes a hash field only if it still holds the value
// read, so a halt refreshed meanwhile survives.
var removeIfUnchanged = redis.NewScript(`
if redis.call("HGET", KEYS[1], ARGV[1]) == ARGV[2] then
	return redis.call("HDEL", KEYS[1], ARGV[1])
end
return 0`)

// List returns the current halts, oldest first. Halts not refreshed within
// StaleAfter by Redis's clock (their worker died) and unreadable entries are
// removed and left out.
func (h *Halts) List(ctx context.Context) ([]Halt, error) {
	res, err := listScript.Run(ctx, h.Redis, []string{h.Key()}).StringSlice()
	if err != nil || len(res)%2 != 1 {
		return nil, fmt.Errorf("admin: list halts: %w", cmp.Or(err, errors.New("unexpected reply")))
	}
	now, err := strconv.ParseInt(res[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("admin: list halts: Redis time %q: %w", res[0], err)
	}
	cutoff := time.UnixMilli(now).Add(-h.staleAfter())
	var out []Halt
	for i := 1; i < len(res); i += 2 {
		worker, v := res[i], res[i+1]
		var x storedHalt
		err := json.Unmarshal([]byte(v), &x)
		seen := x.UpdatedAt // a report without Redis's stamp (an older worker)
		if x.SeenMs > 0 {
			seen = time.UnixMilli(x.SeenMs)
		}
		if err != nil || seen.Before(cutoff) {
			if err := removeIfUnchanged.Run(ctx, h.Redis, []string{h.Key()}, worker, v).Err(); err != nil {
				return nil, fmt.Errorf("admin: drop stale halt: %w", err)
			}
			continue
		}
		out = append(out, x.Halt)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].Worker < out[j].Worker
	})
	return out, nil
}

// RequestProbe asks every halted worker to probe the API now, once the
// cause of its halt is fixed, instead of at its next scheduled probe.
func (h *Halts) RequestProbe(ctx context.Context) error {
	if err := h.Redis.Incr(ctx, h.ProbeKey()).Err(); err != nil {
		return fmt.Errorf("admin: request a probe: %w", err)
	}
	return nil
}

// ProbeRequests returns the probe counter; a worker probes when it changes.
func (h *Halts) ProbeRequests(ctx context.Context) (int64, error) {
	n, err := h.Redis.Get(ctx, h.ProbeKey()).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}
