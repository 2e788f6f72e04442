package tasks

import "time"

// How long a job's version stays comparable with newer ones.
//
// The worker keeps each binding's applied versions (its fence) for
// [FenceLifetime] after the binding's last update, then lets Redis forget
// them, so that the fences of ten million bindings do not stay forever.
// An update can only be compared with the versions the fence still holds,
// so every job must run within that lifetime of its version:
//
//   - a job ends within its max age (JOB_MAX_AGE, at most [MaxJobAge]) of
//     its enqueue, or of its requeue;
//   - a dead letter is requeued, keeping its version, only within
//     [VersionWindow] of the version's enqueue; an older one is refused (to
//     apply it anyway, export it and queue the file: a new version).
//
// A newer version's fence entry was written after the older job was
// enqueued, and lives [FenceLifetime] > VersionWindow + MaxJobAge (plus a
// day for clocks) from then, so it is still there when the older job runs.
const (
	// VersionWindow is how long after its enqueue a dead job may be
	// requeued with its version.
	VersionWindow = 21 * 24 * time.Hour
	// MaxJobAge is the largest JOB_MAX_AGE a worker accepts.
	MaxJobAge = 7 * 24 * time.Hour
	// FenceLifetime is how long a binding's fence outlives its last write.
	FenceLifetime = VersionWindow + MaxJobAge + 24*time.Hour
)
