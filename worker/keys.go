package worker

import "fmt"

// Every Redis key the worker package reads or writes is named here, except
// those another package owns and the worker reaches through it: batch
// records ([batch.Store]), dead letters ([deadletter.Store]), halts and the
// probe counter ([admin.Halts]), the version counter ([tasks.VersionKey])
// and asynq's own keys. prefix is [Config.KeyPrefix] (default
// [tasks.DefaultKeyPrefix]). Keys whose hash tag is {<SubsId>} share one
// Redis Cluster slot per binding, so the fence scripts touch one slot.

// fenceKey is the hash of a binding's fence: <prefix>:{<SubsId>}:fence.
// Fields: "<op>" the applied version of operation op, "r:<op>" its
// RequestId, "i:<op>:<task id>" a call's intent "version|deadline ms".
// Slot: SubsId. Lifetime: [tasks.FenceLifetime] after its last begin or
// commit.
func fenceKey(prefix, subsID string) string {
	return fmt.Sprintf("%s:{%s}:fence", prefix, subsID)
}

// lockKey is the string holding the token of the attempt that may call the
// API for a binding: <prefix>:{<SubsId>}:lock. Slot: SubsId. Lifetime: TTL
// of the limiter wait plus two call timeouts plus 5 s, or [Config.AmbiguousHold]
// after a call that may still be applying.
func lockKey(prefix, subsID string) string {
	return fmt.Sprintf("%s:{%s}:lock", prefix, subsID)
}

// jobStateKey is the hash of one job's state (attempts, generation,
// failures, last code, message and RequestId, ambiguity, in-flight
// attempt, version): <prefix>:{<SubsId>}:job:<task id>. Slot: SubsId.
// Lifetime: dropped when a versioned job ends; otherwise a TTL of the job's
// maximum age plus 24 h from the last write.
func jobStateKey(prefix, subsID, taskID string) string {
	return fmt.Sprintf("%s:{%s}:job:%s", prefix, subsID, taskID)
}

// legacyJobStateKey is the hash where workers before the requeue-proof
// layout kept the state of a job's requeue generation gen:
// <prefix>:{<SubsId>}:job:<task id>:<gen>. Slot: SubsId. It is only read
// (once, on upgrade) and deleted; its lifetime is the TTL it was written
// with.
func legacyJobStateKey(prefix, subsID, taskID string, gen int) string {
	return fmt.Sprintf("%s:{%s}:job:%s:%d", prefix, subsID, taskID, gen)
}

// bindingThrottledKey is the string counting a binding's throttling
// answers in a row: <prefix>:{<SubsId>}:throttled. Slot: SubsId. Lifetime:
// 1 min after the last.
func bindingThrottledKey(prefix, subsID string) string {
	return fmt.Sprintf("%s:{%s}:throttled", prefix, subsID)
}

// limitKey is the hash of the fleet's adaptive rate for UpdateSubscription
// (fields rate, at, cut): <prefix>:limit:UpdateSubscription. Slot: its own.
// Lifetime: short TTLs set by the limiter scripts.
func limitKey(prefix string) string { return prefix + ":limit:UpdateSubscription" }

// limitGCRAKey is the key handed to redis_rate for the fleet's GCRA
// limiter, <prefix>:limit:UpdateSubscription:gcra; redis_rate stores it
// under its own "rate:" prefix. Slot: its own. Lifetime: redis_rate's
// short TTL.
func limitGCRAKey(prefix string) string { return limitKey(prefix) + ":gcra" }

// limitSpreadKey is the sorted set of SubsIds scored by the time (Redis's
// clock) of their last isv.FLOW_LIMIT answer:
// <prefix>:limit:UpdateSubscription:throttled. Slot: its own. Lifetime:
// the spread window (5 s).
func limitSpreadKey(prefix string) string { return limitKey(prefix) + ":throttled" }
