// Package batch keeps the record of a CLI batch: which rows of an input file
// were queued, under which task id and version, and what became of each, with
// per-outcome counters that the enqueue CLI follows (--wait), reports
// (--report, batch status) and cancels (batch cancel).
//
// # Identity
//
// A batch is named by its content: [NewHasher] hashes the input file's bytes
// together with its format (not the queue or any other flag), so running the
// same file again within the batch window finds the same batch and queues
// nothing twice, and any change to the file makes a new batch. Ids made by
// earlier versions, which also hashed the queue, come from
// [NewQueueHasher]. Ids are "b" and 16 letters and
// digits 2-9, such as "bq4hz7kpmw2rtx9ca". The task id of line L is
// [TaskID](batch, L), "<batch>_<L>" (batches begun before that form keep
// [LegacyTaskID], "<batch>-<L>"), unless the row carries an
// IdempotencyKey, in which case it is the id package tasks derives from the
// key and the record keeps it. Task ids are deterministic, so a re-run or a
// resume after a crash conflicts with the tasks still in asynq, and the
// record remembers the lines that were queued after asynq has forgotten them.
//
// # Versions
//
// Lines are grouped in blocks of [BlockLines]. The first time a block is
// queued, [Store.Versions] takes one block of the version counter
// (tasks.NextVersions) and records its first version; line L of the block
// gets first + L - block start. Blocks are taken in line order and recorded
// before any of their lines is queued, so versions follow line order within
// a file (of two rows for one binding field, the later one wins), a resumed
// batch reuses the versions its lines already had, and two processes queueing
// the same batch at once agree on them.
//
// # Keys
//
// With the default prefix "dyplsq" ([tasks.DefaultKeyPrefix]) and batch id B,
// every key of a batch carries the hash tag {B}, so each script touches one
// Redis Cluster slot. [Store]'s key builders are in keys.go:
//
//	dyplsq:batch:{B}           hash: the batch's Info (file, queue, state,
//	                           rows, ...) and its counters: "n:<outcome>" rows
//	                           per outcome, "n:queued" rows queued, and
//	                           "c:<outcome>:<code>" rows per outcome and code
//	dyplsq:batch:{B}:rows      string of 4 bits per line, the line's
//	                           outcome (0 = not queued): line L is the high
//	                           nibble of byte L/2 for an even L, the low one
//	                           for an odd L; half a byte per line, 500 KB for
//	                           a million lines. The scripts use GETRANGE and
//	                           SETRANGE on it (no BITFIELD), so that they run
//	                           on miniredis too
//	dyplsq:batch:{B}:d:<N>     hash per [BucketLines] lines (N = line /
//	                           BucketLines): field "<line>" holds code,
//	                           RequestId and message of the line's last state,
//	                           field "t<line>" a task id other than the default;
//	                           small hashes, stored compactly by Redis
//	dyplsq:batch:{B}:versions  hash: block index → first version of the block
//	dyplsq:batches             sorted set of batch ids by creation time, for
//	                           listing recent batches
//
// Every key of a batch expires at the same moment, the batch's creation plus
// the batch window ([Store.TTL], default 7 days): the idempotency window of
// re-runs. Every write checks that the batch still exists, so a late report
// on an expired batch leaves nothing behind.
//
// # Outcomes
//
// A queued row is "pending" until a worker reports on it with [Store.Mark]:
// "applied", "superseded" or "dead" end it, "retrying" and "halted" are
// states on the way. "cancelled" rows were stopped by batch cancel:
// [Store.Cancel] marks the batch, a worker that picks a row asks
// [Store.Cancelled] and ends it cancelled (after reading the binding when an
// earlier attempt's outcome is unknown), and [Store.CancelOpen] ends the
// pending rows of a range at once;
// "invalid" rows were skipped by --skip-invalid, and "duplicate" rows had an
// IdempotencyKey whose task another producer had already queued. A later
// Mark replaces an earlier one and the counters stay exact: one Lua script
// reads the line's previous outcome and code and moves the counts.
package batch
