package admin

import (
	"fmt"

	"github.com/dyplsq/dyplsq/tasks"
)

// Every Redis key the admin package reads or writes is named here: its
// own, under [Halts.Prefix] (default [tasks.DefaultKeyPrefix]), and the
// few of asynq's it reads directly.

// Key is the Redis hash holding the halts, <prefix>:halts: worker → the
// JSON of its [Halt] plus "seen_ms". Slot: its own. Lifetime: none; an
// entry goes when its halt ends or goes stale ([Halts.StaleAfter]).
func (h *Halts) Key() string {
	p := h.Prefix
	if p == "" {
		p = tasks.DefaultKeyPrefix
	}
	return p + ":halts"
}

// ProbeKey is the counter an operator raises to make halted workers probe
// now, <prefix>:halts:probe: each worker's halt loop watches it. Slot: its
// own. Lifetime: forever.
func (h *Halts) ProbeKey() string { return h.Key() + ":probe" }

// pausedKey is the string asynq v0.26 sets while queue q is paused
// (internal/base.PausedKey), readable before the queue exists:
// asynq:{<queue>}:paused. Slot: the queue. Lifetime: asynq's (until
// unpaused).
func pausedKey(q string) string { return "asynq:{" + q + "}:paused" }

// asynqServersKey is asynq v0.26's sorted set of server info keys scored
// by their expiry (Unix seconds). Slot: its own. Lifetime: asynq's.
const asynqServersKey = "asynq:servers"

// asynqServerKey is the member of [asynqServersKey] naming the server info
// of one asynq server: asynq:servers:{<host>:<pid>:<server id>}. Lifetime:
// asynq's heartbeat.
func asynqServerKey(host string, pid int, id string) string {
	return fmt.Sprintf("asynq:servers:{%s:%d:%s}", host, pid, id)
}
