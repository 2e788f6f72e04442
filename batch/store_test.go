package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

// backend makes the Store a test runs against.
type backend func(t *testing.T) *Store

// newStore is a Store on the real Redis of REDIS_URL, under a key prefix of
// its own.
func newStore(t *testing.T) *Store {
	t.Helper()
	rdb := redistest.Client(t)
	s := &Store{Redis: rdb, Prefix: redistest.Namespace(t), TTL: time.Hour}
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, s.prefix()+":*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return s
}

func begin(t *testing.T, s *Store, content string) Info {
	t.Helper()
	id, err := IDOf("csv", strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	info, created, err := s.Begin(context.Background(), Info{ID: id, File: "f.csv", Format: "csv", Queue: "q", Lines: 2000, Rows: 1999, ValidRows: 1999})
	if err != nil || !created {
		t.Fatalf("Begin: created %v, %v", created, err)
	}
	return info
}

func status(t *testing.T, s *Store, id string) Status {
	t.Helper()
	st, err := s.Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestIDs(t *testing.T) {
	a, _ := IDOf("csv", strings.NewReader("x"))
	b, _ := IDOf("csv", strings.NewReader("x"))
	c, _ := IDOf("jsonl", strings.NewReader("x"))
	e, _ := IDOf("csv", strings.NewReader("y"))
	if a != b || a == c || a == e || !ValidID(a) {
		t.Fatalf("ids %s %s %s %s", a, b, c, e)
	}
	// The queue is not part of the id; the ids of earlier versions, which
	// hashed it, differ from the current ones and by queue.
	q1, q2 := NewQueueHasher("csv", "q"), NewQueueHasher("csv", "other")
	q1.Write([]byte("x"))
	q2.Write([]byte("x"))
	if q1.ID() == a || q1.ID() == q2.ID() || !ValidID(q1.ID()) {
		t.Fatalf("legacy ids %s %s, id %s", q1.ID(), q2.ID(), a)
	}
	tid := TaskID(a, 42)
	if id, line, ok := ParseTaskID(tid); !ok || id != a || line != 42 {
		t.Errorf("ParseTaskID(%s) = %s %d %v", tid, id, line, ok)
	}
	if strings.Contains(tid, "-") {
		t.Errorf("TaskID %s holds a -: asynqmon would show it cut", tid)
	}
	if id, line, ok := ParseTaskID(LegacyTaskID(a, 7)); !ok || id != a || line != 7 {
		t.Errorf("ParseTaskID(%s) = %s %d %v", LegacyTaskID(a, 7), id, line, ok)
	}
	for _, bad := range []string{"", "x-1", a + "-0", a + "-x", "idem-0123", a + "_0", "idem_abc"} {
		if _, _, ok := ParseTaskID(bad); ok {
			t.Errorf("ParseTaskID(%q) ok", bad)
		}
	}
}

func TestBeginFindsExisting(t *testing.T) { testBeginFindsExisting(t, newStore) }

func testBeginFindsExisting(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	info := begin(t, s, "a")
	if info.State != StateQueueing || info.Created.IsZero() || info.Expires.Sub(info.Created) != time.Hour || info.Lines != 2000 {
		t.Fatalf("info %+v", info)
	}
	again, created, err := s.Begin(ctx, Info{ID: info.ID, File: "other"})
	if err != nil || created || again.File != "f.csv" || !again.Created.Equal(info.Created) {
		t.Fatalf("second Begin: %+v created %v err %v", again, created, err)
	}
	if _, err := s.Status(ctx, "bzzzzzzzzzzzzzzzz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status of unknown batch: %v", err)
	}
	list, err := s.List(ctx, 0)
	if err != nil || len(list) != 1 || list[0].ID != info.ID {
		t.Fatalf("List = %v, %v", list, err)
	}
}

func TestRecordAndMarkKeepCountersExact(t *testing.T) {
	testRecordAndMarkKeepCountersExact(t, newStore)
}

func testRecordAndMarkKeepCountersExact(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	id := begin(t, s, "b").ID

	// The worker may report on a row before the CLI has recorded it.
	if err := s.Mark(ctx, id, 5, RowState{Outcome: OutcomeApplied, Code: "OK", RequestID: "R5"}); err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	for l := 2; l <= 600; l++ {
		entries = append(entries, Entry{Line: l, Outcome: OutcomePending})
	}
	entries = append(entries, Entry{Line: 601, Outcome: OutcomeInvalid, Message: "PhoneNoA: must be digits only; got 13812345678x"})
	entries = append(entries, Entry{Line: 602, Outcome: OutcomePending, TaskID: "idem-abc"})
	// 600 lines span more than 4 buckets but fewer than 16.
	rec, err := s.Record(ctx, id, entries)
	if err != nil || rec.New != 600 || rec.Cancelled {
		t.Fatalf("Record = %+v, %v", rec, err)
	}
	rec, err = s.Record(ctx, id, entries)
	if err != nil || rec.New != 0 {
		t.Fatalf("second Record = %+v, %v", rec, err)
	}
	st := status(t, s, id)
	if st.Queued != 600 || st.Pending != 599 || st.Applied != 1 || st.Invalid != 1 {
		t.Fatalf("counts %+v", st.Counts)
	}

	marks := []struct {
		line int
		st   RowState
	}{
		{2, RowState{Outcome: OutcomeRetrying, Code: "Throttling.User", Message: "throttled"}},
		{2, RowState{Outcome: OutcomeRetrying, Code: "isp.SYSTEM_ERROR"}},
		{2, RowState{Outcome: OutcomeApplied, Code: "OK", RequestID: "R2"}},
		{3, RowState{Outcome: OutcomeHalted, Code: "SignatureDoesNotMatch"}},
		{3, RowState{Outcome: OutcomeDead, Code: "isv.NO_NOT_EXIST", Message: "number 13812345678 unknown", RequestID: "R3"}},
		{4, RowState{Outcome: OutcomeDead, Code: "isv.NO_NOT_EXIST"}},
		{6, RowState{Outcome: OutcomeSuperseded, Code: "Superseded"}},
		{7, RowState{Outcome: OutcomeDead, Code: "isv.BIND_CONFLICT"}},
		{7, RowState{Outcome: OutcomeApplied, Code: "OK"}}, // requeued, then applied
	}
	for _, m := range marks {
		if err := s.Mark(ctx, id, m.line, m.st); err != nil {
			t.Fatal(err)
		}
	}
	st = status(t, s, id)
	want := Counts{Queued: 600, Pending: 594, Applied: 3, Superseded: 1, Dead: 2, Invalid: 1}
	if st.Counts != want {
		t.Fatalf("counts %+v, want %+v", st.Counts, want)
	}
	wantCodes := []CodeCount{{OutcomeApplied, "OK", 3}, {OutcomeSuperseded, "Superseded", 1}, {OutcomeDead, "isv.NO_NOT_EXIST", 2}}
	if fmt.Sprint(st.Codes) != fmt.Sprint(wantCodes) {
		t.Errorf("codes %v, want %v", st.Codes, wantCodes)
	}
	if st.Ended() != 6 || st.Done() {
		t.Errorf("ended %d done %v", st.Ended(), st.Done())
	}

	rows, err := s.Rows(ctx, id, 1, 8)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(rows))
	for i, r := range rows {
		got[i] = fmt.Sprintf("%d %s %s %s %s %s", r.Line, r.Outcome, r.TaskID, r.Code, r.RequestID, r.Message)
	}
	wantRows := []string{
		"1     ",
		fmt.Sprintf("2 applied %s_2 OK R2 ", id),
		fmt.Sprintf("3 dead %s_3 isv.NO_NOT_EXIST R3 number 138****5678 unknown", id),
		fmt.Sprintf("4 dead %s_4 isv.NO_NOT_EXIST  ", id),
		fmt.Sprintf("5 applied %s_5 OK R5 ", id),
		fmt.Sprintf("6 superseded %s_6 Superseded  ", id),
		fmt.Sprintf("7 applied %s_7 OK  ", id),
		fmt.Sprintf("8 pending %s_8   ", id),
	}
	if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
	// A batch created before task ids lost their "-" keeps its ids.
	if err := s.Redis.HDel(ctx, s.Key(id), taskIDsField).Err(); err != nil {
		t.Fatal(err)
	}
	if rows, _ := s.Rows(ctx, id, 2, 2); len(rows) != 1 || rows[0].TaskID != id+"-2" {
		t.Errorf("legacy batch: rows %+v, want task id %s-2", rows, id)
	}
	if st, _ := s.Status(ctx, id); !st.LegacyTaskIDs || st.TaskID(3) != id+"-3" {
		t.Errorf("legacy batch: %+v", st.Info)
	}
	s.Redis.HSet(ctx, s.Key(id), taskIDsField, "2")
	rows, _ = s.Rows(ctx, id, 601, 603)
	if rows[0].Outcome != OutcomeInvalid || rows[0].TaskID != "" || !strings.Contains(rows[0].Message, "138****5678") ||
		rows[1].TaskID != "idem-abc" || rows[2].Outcome != "" {
		t.Errorf("rows 601-603: %+v", rows)
	}
	outs, err := s.Outcomes(ctx, id, 0, 9)
	if err != nil || strings.Join(outs, ",") != ",,applied,dead,dead,applied,superseded,applied,pending,pending" {
		t.Errorf("Outcomes = %q, %v", outs, err)
	}

	if _, err := s.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
	for l := 8; l <= 602; l++ {
		if l == 601 {
			continue
		}
		if err := s.Mark(ctx, id, l, RowState{Outcome: OutcomeApplied}); err != nil {
			t.Fatal(err)
		}
	}
	if st := status(t, s, id); !st.Done() || st.Applied != 597 || st.Pending != 0 {
		t.Errorf("after marking all: done %v %+v", st.Done(), st.Counts)
	}
}

func TestMarkConcurrent(t *testing.T) { testMarkConcurrent(t, newStore) }

func testMarkConcurrent(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	id := begin(t, s, "c").ID
	var entries []Entry
	for l := 1; l <= 200; l++ {
		entries = append(entries, Entry{Line: l, Outcome: OutcomePending})
	}
	if _, err := s.Record(ctx, id, entries); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := 1; l <= 200; l++ {
				o := []string{OutcomeRetrying, OutcomeApplied, OutcomeDead, OutcomeHalted}[(l+g)%4]
				if err := s.Mark(ctx, id, l, RowState{Outcome: o, Code: "C" + o}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := status(t, s, id)
	outs, _ := s.Outcomes(ctx, id, 1, 200)
	var want Counts
	want.Queued = 200
	perCode := map[string]int64{}
	for _, o := range outs {
		switch o {
		case OutcomeRetrying:
			want.Retrying++
		case OutcomeApplied:
			want.Applied++
		case OutcomeDead:
			want.Dead++
		case OutcomeHalted:
			want.Halted++
		}
		perCode[o]++
	}
	if st.Counts != want {
		t.Fatalf("counts %+v, rows say %+v", st.Counts, want)
	}
	for _, c := range st.Codes {
		if c.Code != "C"+c.Outcome || c.Rows != perCode[c.Outcome] {
			t.Errorf("code count %+v, rows say %d", c, perCode[c.Outcome])
		}
	}
}

func TestCancelledBatchRecordsCancelled(t *testing.T) {
	testCancelledBatchRecordsCancelled(t, newStore)
}

func testCancelledBatchRecordsCancelled(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	id := begin(t, s, "d").ID
	if _, err := s.Record(ctx, id, []Entry{{Line: 2, Outcome: OutcomePending}}); err != nil {
		t.Fatal(err)
	}
	prev, err := s.Cancel(ctx, id)
	if err != nil || prev != StateQueueing {
		t.Fatalf("Cancel = %q, %v", prev, err)
	}
	rec, err := s.Record(ctx, id, []Entry{{Line: 3, Outcome: OutcomePending}, {Line: 4, Outcome: OutcomeInvalid}})
	if err != nil || !rec.Cancelled || rec.New != 2 {
		t.Fatalf("Record after cancel = %+v, %v", rec, err)
	}
	if state, err := s.Complete(ctx, id); err != nil || state != StateCancelled {
		t.Errorf("Complete of a cancelled batch = %q, %v", state, err)
	}
	st := status(t, s, id)
	if st.Pending != 1 || st.Cancelled != 1 || st.Invalid != 1 || st.Queued != 2 || st.State != StateCancelled {
		t.Errorf("status %+v", st)
	}
}

func TestVersionsAgreeAndFollowBlocks(t *testing.T) { testVersionsAgreeAndFollowBlocks(t, newStore) }

func testVersionsAgreeAndFollowBlocks(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	id := begin(t, s, "e").ID
	var mu sync.Mutex
	seen := map[int]map[int64]bool{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 4 {
				v, err := s.Versions(ctx, id, b, BlockLines)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[b] == nil {
					seen[b] = map[int64]bool{}
				}
				seen[b][v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var prev int64
	for b := range 4 {
		if len(seen[b]) != 1 {
			t.Fatalf("block %d got versions %v", b, seen[b])
		}
		for v := range seen[b] {
			if v <= prev {
				t.Errorf("block %d starts at %d, not after block %d's %d", b, v, b-1, prev)
			}
			prev = v
		}
	}
	if _, err := s.Versions(ctx, "bzzzzzzzzzzzzzzzz", 0, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("Versions of unknown batch: %v", err)
	}
}

func TestKeysExpireTogether(t *testing.T) { testKeysExpireTogether(t, newStore) }

func testKeysExpireTogether(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	id := begin(t, s, "f").ID
	if _, err := s.Versions(ctx, id, 0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, id, []Entry{{Line: 2, Outcome: OutcomeInvalid, Message: "bad"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Mark(ctx, id, 300, RowState{Outcome: OutcomeDead, Code: "X"}); err != nil {
		t.Fatal(err)
	}
	want, err := s.Redis.PExpireTime(ctx, s.Key(id)).Result()
	if err != nil || want <= 0 {
		t.Fatalf("batch key expiry %v %v", want, err)
	}
	for _, k := range []string{s.RowsKey(id), s.VersionsKey(id), s.BucketKey(id, 0), s.BucketKey(id, 300/BucketLines)} {
		if got, err := s.Redis.PExpireTime(ctx, k).Result(); err != nil || got != want {
			t.Errorf("%s expires at %v, want %v (%v)", k, got, want, err)
		}
	}
	// After the window, writes leave nothing behind.
	s.Redis.Del(ctx, s.Key(id))
	if err := s.Mark(ctx, id, 9, RowState{Outcome: OutcomeApplied}); err != nil {
		t.Errorf("Mark on an expired batch: %v", err)
	}
	if n, _ := s.Redis.Exists(ctx, s.BucketKey(id, 0)+"x", s.BucketKey(id, 9/BucketLines)).Result(); n != 1 {
		// bucket 0 still exists from before; nothing new was created
		t.Errorf("exists = %d", n)
	}
	if _, err := s.Record(ctx, id, []Entry{{Line: 3, Outcome: OutcomePending}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Record on an expired batch: %v", err)
	}
}

func TestMarkRejectsUnknownOutcome(t *testing.T) {
	s := &Store{}
	for _, o := range []string{"", "done", OutcomeInvalid, OutcomeDuplicate} {
		if err := s.Mark(context.Background(), "bzzzzzzzzzzzzzzzz", 1, RowState{Outcome: o}); err == nil {
			t.Errorf("Mark(%q) accepted", o)
		}
	}
}

func TestRecordManyEntries(t *testing.T) { testRecordManyEntries(t, newStore) }

func testRecordManyEntries(t *testing.T, open backend) {
	ctx := context.Background()
	s := open(t)
	id := begin(t, s, "g").ID
	var entries []Entry
	for l := 1; l < 16*BucketLines; l++ {
		entries = append(entries, Entry{Line: l, Outcome: OutcomePending})
	}
	rec, err := s.Record(ctx, id, entries)
	if err != nil || rec.New != len(entries) {
		t.Fatalf("Record = %+v, %v", rec, err)
	}
	if st := status(t, s, id); st.Pending != int64(len(entries)) {
		t.Errorf("pending %d", st.Pending)
	}
	if _, err := s.Record(ctx, id, []Entry{{Line: 1, Outcome: OutcomePending}, {Line: 16 * BucketLines, Outcome: OutcomePending}}); err == nil {
		t.Error("entries over 17 buckets accepted")
	}
}

// MarkOpen changes only rows that are open, and Open tells which are.
func TestMarkOpen(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	info := begin(t, s, "mark open")
	var es []Entry
	for l := 2; l <= 5; l++ {
		es = append(es, Entry{Line: l, Outcome: OutcomePending})
	}
	if _, err := s.Record(ctx, info.ID, es); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Mark(ctx, info.ID, 3, RowState{Outcome: OutcomeRetrying, Code: "isp.SYSTEM_ERROR"}))
	must(s.Mark(ctx, info.ID, 4, RowState{Outcome: OutcomeApplied, Code: "OK"}))
	must(s.Mark(ctx, info.ID, 5, RowState{Outcome: OutcomeDead, Code: "isv.BIND_CONFLICT"}))
	refs := []RowRef{{info.ID, 2}, {info.ID, 3}, {info.ID, 4}, {info.ID, 5}, {info.ID, 6}, {"bgonegonegonegone", 2}}
	open, err := s.Open(ctx, refs)
	if err != nil || fmt.Sprint(open) != "[true true false false false false]" {
		t.Fatalf("Open = %v, %v", open, err)
	}
	for _, r := range refs {
		_, err := s.MarkOpen(ctx, r.Batch, r.Line, RowState{Outcome: OutcomeDead, Code: "asynq.Archived"})
		must(err)
	}
	rows, err := s.Rows(ctx, info.ID, 2, 6)
	must(err)
	got := ""
	for _, r := range rows {
		got += fmt.Sprintf("%d:%s:%s ", r.Line, r.Outcome, r.Code)
	}
	if want := "2:dead:asynq.Archived 3:dead:asynq.Archived 4:applied:OK 5:dead:isv.BIND_CONFLICT 6:: "; got != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	st := status(t, s, info.ID)
	if st.Dead != 3 || st.Applied != 1 || st.Pending != 0 || st.Retrying != 0 || st.Queued != 4 {
		t.Errorf("counts %+v", st.Counts)
	}
}

// TestCancelledAndCancelOpen: Cancelled reads one field; CancelOpen ends
// the pending rows of a range cancelled, leaves ended, retrying and halted
// rows (an attempt of theirs was made) and the kept lines alone, and moves
// the counters exactly.
func TestCancelledAndCancelOpen(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	info := begin(t, s, "cancel-open")
	if c, err := s.Cancelled(ctx, info.ID); c || err != nil {
		t.Fatalf("Cancelled before cancel: %v %v", c, err)
	}
	if c, err := s.Cancelled(ctx, "bzzzzzzzzzzzzzzzz"); c || err != nil {
		t.Fatalf("Cancelled of no batch: %v %v", c, err)
	}
	var es []Entry
	for l := 2; l <= 1999; l++ {
		es = append(es, Entry{Line: l, Outcome: OutcomePending})
	}
	for len(es) > 0 {
		n := min(len(es), 1000)
		if _, err := s.Record(ctx, info.ID, es[:n]); err != nil {
			t.Fatal(err)
		}
		es = es[n:]
	}
	marks := map[int]RowState{
		2:    {Outcome: OutcomeApplied, Code: "OK"},
		3:    {Outcome: OutcomeRetrying, Code: "isp.SYSTEM_ERROR", Message: "busy"},
		700:  {Outcome: OutcomeHalted, Code: "SignatureDoesNotMatch"},
		1500: {Outcome: OutcomeDead, Code: "isv.NO_NOT_EXIST"},
		1501: {Outcome: OutcomeRetrying, Code: "isp.SYSTEM_ERROR"},
	}
	for l, st := range marks {
		if err := s.Mark(ctx, info.ID, l, st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Cancel(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Cancelled(ctx, info.ID); !c || err != nil {
		t.Fatalf("Cancelled after cancel: %v %v", c, err)
	}
	n, err := s.CancelOpen(ctx, info.ID, 1, 2000, []int{1501, 9}, "cancelled")
	if err != nil || n != 1998-6 {
		t.Fatalf("CancelOpen: %d %v", n, err)
	}
	st := status(t, s, info.ID)
	if st.Applied != 1 || st.Dead != 1 || st.Retrying != 2 || st.Pending != 1 || st.Halted != 1 || st.Cancelled != 1992 || st.Queued != 1998 {
		t.Fatalf("counts %+v", st.Counts)
	}
	rows, _ := s.Rows(ctx, info.ID, 3, 4)
	if rows[0].Outcome != OutcomeRetrying || rows[0].Code != "isp.SYSTEM_ERROR" {
		t.Errorf("row 3, retrying: %+v", rows[0])
	}
	if rows[1].Outcome != OutcomeCancelled || rows[1].Code != "" || rows[1].Message != "cancelled" {
		t.Errorf("row 4: %+v", rows[1])
	}
	if n, err := s.CancelOpen(ctx, info.ID, 1, 2000, nil, "cancelled"); n != 1 || err != nil {
		t.Errorf("second CancelOpen: %d %v", n, err)
	}
}
