package worker

import (
	"fmt"
	"strconv"

	"github.com/dyplsq/dyplsq/tasks"
)

// Every Redis key the worker package reads or writes is named here, except
// those another package owns and the worker reaches through it: batch
// records ([batch.Store]), dead letters ([deadletter.Store]), halts and the
// probe counter ([admin.Halts]), the version counter ([tasks.VersionKey]),
// the keys the monitor's page reads too (a binding's fence, lock and job
// states: [tasks.FenceKey], [tasks.LockKey], [tasks.JobStateKey]; the shared
// rate: [tasks.LimitKey]), and asynq's own keys but one (the task hash the
// worker writes a job's result into, [asynqTaskKey]). prefix is [Config.KeyPrefix] (default [tasks.DefaultKeyPrefix]).
// Keys whose hash tag is {<SubsId>} share one Redis Cluster slot per
// binding, so the fence scripts touch one slot.

// legacyJobStateKey is the hash where workers before the requeue-proof
// layout kept the state of a job's requeue generation gen:
// <prefix>:{<SubsId>}:job:<task id>:<gen>. Slot: SubsId. It is only read
// (once, on upgrade) and deleted; its lifetime is the TTL it was written
// with.
func legacyJobStateKey(prefix, subsID, taskID string, gen int) string {
	return tasks.JobStateKey(prefix, subsID, taskID) + ":" + strconv.Itoa(gen)
}

// bindingThrottledKey is the string counting a binding's throttling
// answers in a row: <prefix>:{<SubsId>}:throttled. Slot: SubsId. Lifetime:
// 1 min after the last.
func bindingThrottledKey(prefix, subsID string) string {
	return fmt.Sprintf("%s:{%s}:throttled", prefix, subsID)
}

// limitGCRAKey is the fleet's GCRA bucket (limitTake),
// rate:<prefix>:limit:UpdateSubscription:gcra: a string holding the
// theoretical arrival time, named and kept as go-redis/redis_rate, which
// earlier workers used, names and keeps it. Slot: its own. Lifetime: until
// the bucket would be full again.
func limitGCRAKey(prefix string) string { return "rate:" + tasks.LimitKey(prefix) + ":gcra" }

// limitSpreadKey is the sorted set of SubsIds scored by the time (Redis's
// clock) of their last isv.FLOW_LIMIT answer:
// <prefix>:limit:UpdateSubscription:throttled. Slot: its own. Lifetime:
// the spread window (5 s).
func limitSpreadKey(prefix string) string { return tasks.LimitKey(prefix) + ":throttled" }

// asynqTaskKey is the hash where asynq v0.26 keeps task id of queue
// (internal/base.TaskKey): asynq:{<queue>}:t:<task id>. The worker writes
// only its "result" field, as asynq's ResultWriter does, in the round trip
// of the fence's commit. Slot: the queue. Lifetime: asynq's (the task's
// retention).
func asynqTaskKey(queue, taskID string) string { return "asynq:{" + queue + "}:t:" + taskID }
