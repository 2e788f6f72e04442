package tasks

// Every Redis key the tasks package reads or writes is named here, and the
// keys that both the worker, which writes them, and the monitor's page,
// which reads them, name: a binding's fence, lock and job states, and the
// shared rate limit.
// The idempotency of keyed updates needs no key of its own: it rests on
// asynq's task ids ([TaskIDForKey]).

// DefaultKeyPrefix starts the name of every Redis key dyplsq itself keeps
// (asynq keeps its own under "asynq:"). It is the default of every
// package's and command's key prefix; worker and producers must agree.
const DefaultKeyPrefix = "dyplsq"

// VersionKey returns the name of the one Redis counter that versions every
// job: prefix + ":version" ("dyplsq:version" for the default prefix, used
// when prefix is empty). Producers, the enqueue CLI and workers (for jobs
// enqueued without a version) take versions from it, so versions follow the
// order in which they were taken. Type: string (INCRBY counter). Slot: its
// own. Lifetime: forever.
func VersionKey(prefix string) string {
	return prefixOr(prefix) + ":version"
}

// DurableMarkerKey is the key [WaitReplicas] writes before WAIT:
// <prefix>:durable:{<queue>}. Type: string holding nothing of use. Slot:
// the queue's, the cluster slot of the queue's own keys. Lifetime: a TTL
// of one minute.
func DurableMarkerKey(prefix, queue string) string {
	return prefixOr(prefix) + ":durable:{" + queue + "}"
}

// ShardsKey returns the name of the hash of queue shard counts:
// <prefix>:queue-shards, field the queue's name, value its shard count (2
// or more; a queue not in it is one queue). Slot: its own. Lifetime:
// forever; a worker changes a count only when every queue of the old
// layout is empty.
func ShardsKey(prefix string) string {
	return prefixOr(prefix) + ":queue-shards"
}

// The keys of one binding have the hash tag {<SubsId>}: they share one Redis
// Cluster slot per binding, so the worker's fence scripts touch one slot.

// FenceKey returns the name of a binding's fence, the hash that keeps the
// newest version applied of each of its operations:
// <prefix>:{<SubsId>}:fence. Fields: "<op>" the applied version of
// operation op, "r:<op>" its RequestId, "i:<op>:<task id>" a call's intent
// "version|deadline ms". Slot: SubsId. Lifetime: [FenceLifetime] after its
// last begin or commit.
func FenceKey(prefix, subsID string) string {
	return prefixOr(prefix) + ":{" + subsID + "}:fence"
}

// LockKey returns the name of the string holding the token of the attempt
// that may call the API for a binding: <prefix>:{<SubsId>}:lock. Slot:
// SubsId. Lifetime: a TTL of the worker's limiter wait plus two call
// timeouts plus 5 s, or the worker's AmbiguousHold after a call that may
// still be applying.
func LockKey(prefix, subsID string) string {
	return prefixOr(prefix) + ":{" + subsID + "}:lock"
}

// JobStateKey returns the name of the hash of one job's state in the
// worker (attempts, generation, failures, last code, message and RequestId,
// ambiguity, in-flight attempt, version): <prefix>:{<SubsId>}:job:<task id>.
// Slot: SubsId. Lifetime: dropped when a versioned job ends; otherwise a TTL
// of the job's maximum age plus 24 h from the last write. With taskID "*"
// it is the SCAN pattern of the binding's job states.
func JobStateKey(prefix, subsID, taskID string) string {
	return prefixOr(prefix) + ":{" + subsID + "}:job:" + taskID
}

// LimitKey returns the name of the hash of the fleet's adaptive rate for
// UpdateSubscription (fields rate, at, cut): <prefix>:limit:UpdateSubscription.
// Slot: its own. Lifetime: short TTLs set by the worker's limiter scripts.
func LimitKey(prefix string) string {
	return prefixOr(prefix) + ":limit:UpdateSubscription"
}

// prefixOr returns prefix, or DefaultKeyPrefix when it is empty.
func prefixOr(prefix string) string {
	if prefix == "" {
		return DefaultKeyPrefix
	}
	return prefix
}
