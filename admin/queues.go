package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/tasks"
)

// DefaultQueues are the queues dyplsq's producers use unless told
// otherwise: the Go API's and the enqueue CLI's.
var DefaultQueues = []string{tasks.DefaultLiveQueue, tasks.DefaultBulkQueue}

// QueuesInUse returns, sorted, the default queues and every queue asynq has
// had a task in; with served, also the queues that live workers serve. A
// queue name outside this list is most likely a typo.
func QueuesInUse(insp *asynq.Inspector, served bool) ([]string, error) {
	known := slices.Clone(DefaultQueues)
	qs, err := insp.Queues()
	if err != nil {
		return nil, fmt.Errorf("admin: list queues: %w", err)
	}
	known = append(known, qs...)
	if served {
		servers, err := insp.Servers()
		if err != nil {
			return nil, fmt.Errorf("admin: list workers: %w", err)
		}
		for _, s := range servers {
			for q := range s.Queues {
				known = append(known, q)
			}
		}
	}
	slices.Sort(known)
	return slices.Compact(known), nil
}

// Closest returns the name of known nearest to name, if it is at most two
// edits away (a typo), or "".
func Closest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d > 0 && d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment) of a and b: insertions, deletions, substitutions and swaps of
// two neighbours.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// UnknownQueueError names a queue no producer uses and no worker serves.
type UnknownQueueError struct {
	Queue string
	Known []string
}

func (e *UnknownQueueError) Error() string {
	msg := fmt.Sprintf("queue %q is not in use: nothing was ever queued to it and no worker serves it", e.Queue)
	if c := Closest(e.Queue, e.Known); c != "" {
		msg += fmt.Sprintf("; did you mean %q?", c)
	} else {
		msg += fmt.Sprintf(" (queues in use: %s)", strings.Join(e.Known, ", "))
	}
	return msg
}

// CheckQueues returns an [*UnknownQueueError] for the first of queues that
// is not in use (see [QueuesInUse], with the queues live workers serve).
func CheckQueues(insp *asynq.Inspector, queues ...string) error {
	known, err := QueuesInUse(insp, true)
	if err != nil {
		return err
	}
	for _, q := range queues {
		if !slices.Contains(known, q) {
			return &UnknownQueueError{Queue: q, Known: known}
		}
	}
	return nil
}

// CheckQueuesOrShards is [CheckQueues], where a queue split into shards
// (see tasks.Layout) is in use too: its jobs go to its shards, and every
// worker serving it serves them.
func CheckQueuesOrShards(ctx context.Context, rdb redis.UniversalClient, prefix string, insp *asynq.Inspector, queues ...string) error {
	split, err := tasks.ReadLayouts(ctx, rdb, prefix)
	if err != nil {
		return err
	}
	var rest []string
	for _, q := range queues {
		if _, ok := split[q]; !ok {
			rest = append(rest, q)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return CheckQueues(insp, rest...)
}
