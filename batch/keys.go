package batch

import (
	"strconv"

	"github.com/dyplsq/dyplsq/tasks"
)

// Every Redis key the batch package reads or writes is named here. The keys
// of one batch all carry the hash tag {<id>}, so each script touches one
// Redis Cluster slot, and all expire at the same moment: the batch's
// creation plus the batch window ([Store.TTL], default [DefaultTTL]). The
// package doc's "Keys" section lays out their contents.

// prefix is the start of every key: [Store.Prefix], or
// [tasks.DefaultKeyPrefix] when that is empty.
func (s *Store) prefix() string {
	if s.Prefix == "" {
		return tasks.DefaultKeyPrefix
	}
	return s.Prefix
}

// Key is the hash holding batch id's Info and counters:
// <prefix>:batch:{<id>}. Slot: the batch id. Lifetime: the batch window.
func (s *Store) Key(id string) string { return s.prefix() + ":batch:{" + id + "}" }

// RowsKey is the string of batch id's row outcomes, 4 bits per line:
// <prefix>:batch:{<id>}:rows. Line L's outcome code is the high nibble of
// byte L/2 for an even L, the low nibble for an odd one (the layout of
// BITFIELD u4 at offset #L; the scripts read and write it with GETRANGE and
// SETRANGE). Slot: the batch id. Lifetime: the batch window.
func (s *Store) RowsKey(id string) string { return s.Key(id) + ":rows" }

// VersionsKey is the hash of batch id's version blocks, block index → first
// version of the block: <prefix>:batch:{<id>}:versions. Slot: the batch id.
// Lifetime: the batch window.
func (s *Store) VersionsKey(id string) string { return s.Key(id) + ":versions" }

// BucketKey is the hash of details of batch id's lines from
// bucket·BucketLines to (bucket+1)·BucketLines-1:
// <prefix>:batch:{<id>}:d:<bucket>. Slot: the batch id. Lifetime: the batch
// window.
func (s *Store) BucketKey(id string, bucket int) string {
	return s.Key(id) + ":d:" + strconv.Itoa(bucket)
}

// IndexKey is the sorted set of batch ids scored by creation time (Unix
// milliseconds): <prefix>:batches. Slot: its own. Lifetime: none; entries
// are trimmed as their batches expire.
func (s *Store) IndexKey() string { return s.prefix() + ":batches" }
