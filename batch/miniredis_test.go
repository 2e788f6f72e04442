package batch

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// newMiniRedis starts a miniredis of the test's own, the in-memory Redis
// make demo runs on a machine without redis-server, and returns it with a
// Store on it.
//
// Its clock is pinned: miniredis keeps a PEXPIREAT as a duration from the
// moment it ran, and answers PEXPIRETIME with the current time plus that
// duration, so on a running clock keys given the same deadline a few
// milliseconds apart would report different ones. Time moves with
// FastForward.
func newMiniRedis(t *testing.T) (*miniredis.Miniredis, *Store) {
	t.Helper()
	m := miniredis.RunT(t)
	m.SetTime(time.Now())
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return m, &Store{Redis: rdb, TTL: time.Hour}
}

func newMiniStore(t *testing.T) *Store {
	t.Helper()
	_, s := newMiniRedis(t)
	return s
}

// storeTests are the tests of the store's paths that run against any
// backend.
var storeTests = []struct {
	name string
	run  func(*testing.T, backend)
}{
	{"BeginFindsExisting", testBeginFindsExisting},
	{"RecordAndMarkKeepCountersExact", testRecordAndMarkKeepCountersExact},
	{"MarkConcurrent", testMarkConcurrent},
	{"CancelledBatchRecordsCancelled", testCancelledBatchRecordsCancelled},
	{"VersionsAgreeAndFollowBlocks", testVersionsAgreeAndFollowBlocks},
	{"KeysExpireTogether", testKeysExpireTogether},
	{"RecordManyEntries", testRecordManyEntries},
	{"RecordSameLineTwice", testRecordSameLineTwice},
}

// TestMiniRedis runs the store's paths (Begin, Versions, Record, Mark with
// replacements and exact counters, Status, Outcomes, Rows, Complete, Cancel,
// expiry) on miniredis: its scripts must use only what miniredis implements.
func TestMiniRedis(t *testing.T) {
	for _, tc := range storeTests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newMiniStore) })
	}
}

func TestRecordSameLineTwice(t *testing.T) { testRecordSameLineTwice(t, newStore) }

// testRecordSameLineTwice: a line given twice in one Record call is recorded
// once, by its first entry, as a line recorded by an earlier call would be.
func testRecordSameLineTwice(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	id := begin(t, s, "h").ID
	rec, err := s.Record(ctx, id, []Entry{
		{Line: 2, Outcome: OutcomePending}, {Line: 3, Outcome: OutcomeInvalid, Code: "X"},
		{Line: 2, Outcome: OutcomeInvalid, Code: "Y"}, {Line: 3, Outcome: OutcomePending},
	})
	if err != nil || rec.New != 2 {
		t.Fatalf("Record = %+v, %v", rec, err)
	}
	st := status(t, s, id)
	if st.Queued != 1 || st.Pending != 1 || st.Invalid != 1 || len(st.Codes) != 1 || st.Codes[0].Code != "X" {
		t.Errorf("status %+v", st)
	}
	if outs, _ := s.Outcomes(ctx, id, 1, 4); strings.Join(outs, ",") != ",pending,invalid," {
		t.Errorf("Outcomes = %q", outs)
	}
}

// TestMiniRedisExpiry: when the batch window passes, every key of the batch
// goes at once, and late writes leave nothing behind.
func TestMiniRedisExpiry(t *testing.T) {
	ctx := context.Background()
	m, s := newMiniRedis(t)
	id := begin(t, s, "i").ID
	if _, err := s.Versions(ctx, id, 0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, id, []Entry{{Line: 2, Outcome: OutcomePending, TaskID: "idem-x"}, {Line: 3, Outcome: OutcomeInvalid, Message: "bad"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Mark(ctx, id, 300, RowState{Outcome: OutcomeDead, Code: "X"}); err != nil {
		t.Fatal(err)
	}
	batchKeys := func() []string {
		var out []string
		for _, k := range m.Keys() {
			if strings.HasPrefix(k, s.Key(id)) {
				out = append(out, k)
			}
		}
		return out
	}
	if got := batchKeys(); len(got) != 5 { // hash, rows, versions, buckets 0 and 2
		t.Fatalf("keys %q", got)
	}
	m.FastForward(s.ttl() - time.Second)
	if got := batchKeys(); len(got) != 5 {
		t.Fatalf("keys before the window passed: %q", got)
	}
	m.FastForward(2 * time.Second)
	if got := batchKeys(); len(got) != 0 {
		t.Fatalf("keys left after the window: %q", got)
	}
	if _, err := s.Status(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status: %v", err)
	}
	if err := s.Mark(ctx, id, 9, RowState{Outcome: OutcomeApplied}); err != nil {
		t.Errorf("Mark: %v", err)
	}
	if _, err := s.Record(ctx, id, []Entry{{Line: 4, Outcome: OutcomePending}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Record: %v", err)
	}
	if got := batchKeys(); len(got) != 0 {
		t.Errorf("late writes left %q", got)
	}
}

// TestRowsLayoutMatchesBitfield: the rows string the scripts write with
// GETRANGE and SETRANGE is the one BITFIELD u4 #line reads and writes, so
// records written by earlier versions (and workers not yet upgraded) agree
// with this one. Real Redis only: miniredis has no BITFIELD.
func TestRowsLayoutMatchesBitfield(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := begin(t, s, "j").ID
	key := s.RowsKey(id)
	code := func(o string) int64 { c, _ := outcomeCode(o); return int64(c) }
	// As an earlier version records: lines 4 and 7 pending, 9 applied.
	for l, o := range map[int]string{4: OutcomePending, 7: OutcomePending, 9: OutcomeApplied} {
		if err := s.Redis.BitField(ctx, key, "SET", "u4", "#"+strconv.Itoa(l), code(o)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var entries []Entry
	for l := 2; l <= 12; l++ {
		entries = append(entries, Entry{Line: l, Outcome: OutcomePending})
	}
	entries[1].Outcome = OutcomeInvalid // line 3
	rec, err := s.Record(ctx, id, entries)
	if err != nil || rec.New != 8 {
		t.Fatalf("Record = %+v, %v", rec, err)
	}
	for l, st := range map[int]RowState{4: {Outcome: OutcomeDead}, 5: {Outcome: OutcomeRetrying}, 9: {Outcome: OutcomeSuperseded}, 13: {Outcome: OutcomeHalted}} {
		if err := s.Mark(ctx, id, l, st); err != nil {
			t.Fatal(err)
		}
	}
	want := ",,pending,invalid,dead,retrying,pending,pending,pending,superseded,pending,pending,pending,halted,"
	outs, err := s.Outcomes(ctx, id, 0, 14)
	if err != nil || strings.Join(outs, ",") != want {
		t.Fatalf("Outcomes = %q, %v\nwant %q", strings.Join(outs, ","), err, want)
	}
	for l, o := range outs {
		got, err := s.Redis.BitField(ctx, key, "GET", "u4", "#"+strconv.Itoa(l)).Result()
		if err != nil || got[0] != code(o) && o != "" || o == "" && got[0] != 0 {
			t.Errorf("BITFIELD GET line %d = %v, %v; Outcomes says %q", l, got, err, o)
		}
	}
}
