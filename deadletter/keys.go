package deadletter

import "github.com/dyplsq/dyplsq/tasks"

// Every Redis key the deadletter package reads or writes is named here.
// The current layout's keys carry the hash tag {dlq}, so they share one
// Redis Cluster slot and a record and its index entry change together, in
// one transaction or script. None has a TTL.

// prefix is the start of every key: [Store.Prefix], or
// [tasks.DefaultKeyPrefix] when that is empty.
func (s *Store) prefix() string {
	if s.Prefix == "" {
		return tasks.DefaultKeyPrefix
	}
	return s.Prefix
}

// IndexKey is the ZSET of task ids scored by DiedAt (Unix milliseconds):
// <prefix>:{dlq}:index. Slot: dlq. Lifetime: as its records.
func (s *Store) IndexKey() string { return s.prefix() + ":{dlq}:index" }

// RecordKey is the string key holding the JSON record of taskID:
// <prefix>:{dlq}:rec:<task id>. Slot: dlq. Lifetime: until requeued or
// purged.
func (s *Store) RecordKey(taskID string) string { return s.prefix() + ":{dlq}:rec:" + taskID }

// AdoptKey is the hash of the records the sweep wrote for archived tasks
// and has not yet found still archived (see [Sweeper]): task id → the
// SHA-1 of the record's bytes (40 hex digits), then the task's queue:
// <prefix>:{dlq}:adopting. Slot: dlq. Lifetime: an entry goes at the
// sweep's check, or at the next sweep's.
func (s *Store) AdoptKey() string { return s.prefix() + ":{dlq}:adopting" }

// CheckKey is the string holding the rank in the index where the next
// sweep's check of records against their tasks starts, shared by the
// workers: <prefix>:{dlq}:check. Slot: dlq. Lifetime: forever (one key).
func (s *Store) CheckKey() string { return s.prefix() + ":{dlq}:check" }

// oldIndexKey (ZSET) and oldRecordKey (string) are the keys of the earlier
// layout, <prefix>:dlq:index and <prefix>:dlq:rec:<task id>, in two slots
// and without a TTL; [Store.Migrate] moves their records into the current
// layout and deletes them.
func (s *Store) oldIndexKey() string               { return s.prefix() + ":dlq:index" }
func (s *Store) oldRecordKey(taskID string) string { return s.prefix() + ":dlq:rec:" + taskID }
