package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/tasks"
)

// servedQueues works out the queues the worker serves, with their asynq
// weights, from the configured queues, the configured shard counts and the
// shard counts in Redis (see docs/ARCHITECTURE.md, "Queue shards"):
//
//   - a queue with a configured count is split that many ways; a count
//     that differs from the one in Redis replaces it, but only when no job
//     is waiting in a shard that the change would leave unserved;
//   - a queue with no configured count follows Redis, so every worker
//     serves every shard whatever its own settings (and a running worker
//     follows a change within queueWatch: see Worker.watchQueues);
//   - a shard of a served queue that is not in the current layout (an
//     earlier split, or one an enqueue or producer that read the layout
//     before a change still filled) is served too while it holds jobs.
//
// A split queue's weight is shared by the queue and its shards, so
// splitting a queue keeps its share of the worker (see weigh).
func servedQueues(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, prefix string,
	queues, shards map[string]int, log zerolog.Logger) (map[string]int, error) {
	if err := checkShards(queues, shards); err != nil {
		return nil, err
	}
	registered, err := tasks.ReadLayouts(ctx, rdb, prefix)
	if err != nil {
		return nil, err
	}
	known, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("list the queues: %w", err)
	}
	groups := make(map[string][]string, len(queues))
	for _, q := range slices.Sorted(maps.Keys(queues)) {
		l := registered[q]
		l.Queue = q
		if n, ok := shards[q]; ok && max(n, 1) != max(l.Shards, 1) {
			if l, err = reshard(ctx, rdb, insp, prefix, l, n, log); err != nil {
				return nil, err
			}
		} else if !ok && l.Sharded() {
			log.Info().Str("queue", q).Int("shards", l.Shards).Msg("serving the queue's shards, as split in Redis by another worker's WORKER_SHARDS")
		}
		names := l.Names()
		for _, s := range leftoverShards(insp, q, names, known) {
			log.Warn().Str("queue", s).Msg("serving a shard of an earlier split of the queue while it holds jobs")
			names = append(names, s)
		}
		groups[q] = names
	}
	return weigh(queues, groups), nil
}

// settingError is an error of servedQueues that trying again cannot mend:
// the settings, or the jobs in Redis, forbid what the settings ask.
type settingError struct{ error }

func (e settingError) Unwrap() error { return e.error }

// startQueues is servedQueues for a worker that starts. When Redis does not
// answer, the worker starts on its configured queues, unsplit, and returns
// the shard counts still to apply (watchQueues applies them, and follows
// the split, once Redis answers); a setting that cannot be applied is an
// error.
func startQueues(rdb redis.UniversalClient, insp *asynq.Inspector, prefix string,
	queues, shards map[string]int, log zerolog.Logger) (served, pending map[string]int, err error) {
	if err := checkShards(queues, shards); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for try := 0; ; try++ {
		served, err = servedQueues(ctx, rdb, insp, prefix, queues, shards, log)
		var se settingError
		if err == nil || errors.As(err, &se) {
			return served, nil, err
		}
		if try == 2 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // a blip: try again before falling back
	}
	log.Warn().Err(err).Msg("cannot read how the queues are split: serving them as configured until Redis answers")
	groups := make(map[string][]string, len(queues))
	for q := range queues {
		groups[q] = []string{q}
	}
	return weigh(queues, groups), shards, nil
}

// checkShards checks WORKER_SHARDS against WORKER_QUEUES.
func checkShards(queues, shards map[string]int) error {
	for q, n := range shards {
		if _, ok := queues[q]; !ok {
			return settingError{fmt.Errorf("WORKER_SHARDS splits queue %s, which WORKER_QUEUES does not serve", q)}
		}
		if n < 1 || n > tasks.MaxShards {
			return settingError{fmt.Errorf("WORKER_SHARDS: queue %s: %d shards, want 1 to %d", q, n, tasks.MaxShards)}
		}
		if n > 1 && strings.ContainsAny(q, "{}") {
			return settingError{fmt.Errorf("WORKER_SHARDS: queue %q cannot be split: a name with { or } decides its own Redis Cluster slot", q)}
		}
	}
	for q := range queues {
		if base, ok := tasks.ShardBase(q); ok {
			if _, served := queues[base]; served {
				return settingError{fmt.Errorf("WORKER_QUEUES: %s is named as a shard of queue %s (<queue>.<n> names are kept for shards); rename it", q, base)}
			}
		}
	}
	return nil
}

// reshard changes the shard count of l.Queue to n, when no job waits in a
// shard of the old layout. The new shards are paused when the queue or a
// shard of the old layout was.
func reshard(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, prefix string, l tasks.Layout, n int, log zerolog.Logger) (tasks.Layout, error) {
	next := tasks.Layout{Queue: l.Queue, Shards: n}
	if l.Sharded() {
		var waiting int
		var where []string
		for _, s := range l.Names()[1:] {
			if slices.Contains(next.Names(), s) {
				continue
			}
			if k := jobsIn(insp, s); k < 0 {
				return l, fmt.Errorf("WORKER_SHARDS: cannot count the jobs in %s, a shard of queue %s split %d ways, before splitting it %d ways", s, l.Queue, l.Shards, n)
			} else if k != 0 {
				waiting += k
				where = append(where, s)
			}
		}
		if waiting != 0 {
			return l, settingError{fmt.Errorf("WORKER_SHARDS splits queue %s %d ways, but Redis has it split %d ways and %d jobs still wait in %s: "+
				"set WORKER_SHARDS to %s:%d, or change the count once those shards are empty (enqueue queue status %s)",
				l.Queue, n, l.Shards, waiting, strings.Join(where, ", "), l.Queue, l.Shards, l.Queue)}
		}
	}
	ctl := &admin.Control{Inspector: insp, Halts: &admin.Halts{Redis: rdb, Prefix: prefix}}
	if st, _, err := ctl.Status(ctx, l.Names()...); err != nil {
		return l, err
	} else if slices.ContainsFunc(st, func(q admin.QueueStatus) bool { return q.Paused }) {
		if err := ctl.Pause(ctx, next.Names()...); err != nil {
			return l, err
		}
	}
	got, err := tasks.SetShards(ctx, rdb, prefix, l.Queue, l.Shards, n)
	if err != nil {
		return l, err
	}
	if max(got, 1) != max(n, 1) {
		return l, settingError{fmt.Errorf("WORKER_SHARDS: another worker changed the shard count of queue %s to %d meanwhile; start this one again", l.Queue, got)}
	}
	log.Info().Str("queue", l.Queue).Int("from", max(l.Shards, 1)).Int("to", max(n, 1)).Msg("changed the queue's shard count (WORKER_SHARDS)")
	return next, nil
}

// jobsIn returns the jobs in queue q that a worker still has to run, or
// -1 when they cannot be counted.
func jobsIn(insp *asynq.Inspector, q string) int {
	n, err := admin.JobsToRun(insp, q)
	if err != nil {
		return -1
	}
	return n
}

// leftoverShards returns the queues of known that are named as shards of
// queue ("<queue>.<i>" or "<queue>.<i>-<k>"), are not in names, and hold
// jobs still to run.
func leftoverShards(insp *asynq.Inspector, queue string, names, known []string) []string {
	var out []string
	for _, k := range tasks.Shards(known, queue) {
		if !slices.Contains(names, k) && jobsIn(insp, k) != 0 {
			out = append(out, k)
		}
	}
	return out
}

// weigh gives every queue of groups its asynq weight: the queues of one
// group share the configured weight of the group's queue. Each queue outside
// a split gets its weight times the largest group's size, each member of a
// group its share of that, at least 1: weights stay below 65 times the
// configured ones (asynq walks a list as long as their sum on every
// dequeue).
func weigh(queues map[string]int, groups map[string][]string) map[string]int {
	k := 1
	for _, g := range groups {
		k = max(k, len(g))
	}
	out := make(map[string]int)
	for q, names := range groups {
		for _, s := range names {
			out[s] = max(1, queues[q]*k/len(names))
		}
	}
	return out
}
