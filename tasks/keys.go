package tasks

// Every Redis key the tasks package reads or writes is named here. The
// idempotency of keyed updates needs no key of its own: it rests on asynq's
// task ids ([TaskIDForKey]).

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
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return prefix + ":version"
}

// DurableMarkerKey is the key [WaitReplicas] writes before WAIT:
// <prefix>:durable:{<queue>}. Type: string holding nothing of use. Slot:
// the queue's, the cluster slot of the queue's own keys. Lifetime: a TTL
// of one minute.
func DurableMarkerKey(prefix, queue string) string {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return prefix + ":durable:{" + queue + "}"
}
