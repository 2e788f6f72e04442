package deadletter

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

// newStore returns a Store with a prefix of its own; its keys are removed
// when the test ends.
func newStore(t *testing.T) (*Store, *redis.Client, string) {
	t.Helper()
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	s := &Store{Redis: rdb, Prefix: ns}
	t.Cleanup(func() { deleteKeys(rdb, ns+":*") })
	return s, rdb, ns
}

func deleteKeys(rdb *redis.Client, pattern string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func rec(id, code string, died time.Time) Record {
	return Record{
		TaskID: id, Queue: "q", Type: "dypls:update_subscription",
		Code: code, Reason: ReasonPermanent, Attempts: 1,
		FirstFailure: died.Add(-time.Minute), LastFailure: died, DiedAt: died,
		Payload: json.RawMessage(`{"SubsId":"1000000768790001","PhoneNoA":"13812345678"}`),
	}
}

func TestPutIdempotent(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	first := Record{
		TaskID: "a", Queue: "q", Type: "t", Code: "isp.SYSTEM_ERROR", Reason: ReasonAttempts,
		Message: "PhoneNoA 13812345678 failed", Attempts: 5,
		FirstFailure: t0, LastFailure: t0.Add(time.Hour), DiedAt: t0.Add(time.Hour),
	}
	first.SetPayload([]byte(`{"SubsId":1000000768790001,"OperateType":"updateNoA","PhoneNoA":"13812345678","_meta":{"schema":1,"version":42,"batch":"b1","line":7}}`))
	if err := s.Put(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := first
	again.Attempts = 3
	again.FirstFailure = t0.Add(30 * time.Minute)
	again.DiedAt = t0.Add(2 * time.Hour)
	again.RequestID = "REQ-1"
	if err := s.Put(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, again); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, "a")
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if !got.FirstFailure.Equal(t0) || got.Attempts != 5 || !got.DiedAt.Equal(first.DiedAt) || got.RequestID != "REQ-1" {
		t.Errorf("merged record: first %v attempts %d died %v request %q", got.FirstFailure, got.Attempts, got.DiedAt, got.RequestID)
	}
	if got.Message != "PhoneNoA 138****5678 failed" {
		t.Errorf("message not masked: %q", got.Message)
	}
	if got.SubsId != "1000000768790001" || got.OperateType != "updateNoA" || got.Version != 42 || got.Batch != "b1" || got.Line != 7 {
		t.Errorf("payload fields: %+v", got)
	}
	if string(got.Payload) != string(first.Payload) {
		t.Errorf("payload changed: %s", got.Payload)
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	if _, ok, _ := s.Get(ctx, "nope"); ok {
		t.Error("Get of a missing record reported ok")
	}
}

func TestMalformedPayloadKept(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	r := Record{TaskID: "m", Queue: "q", Type: "t", Code: "Payload.Malformed", Reason: ReasonMalformed, DiedAt: t0}
	raw := []byte("not json \x00\xff 13812345678")
	r.SetPayload(raw)
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, "m")
	if err != nil || string(got.Payload) != string(raw) {
		t.Fatalf("payload %q, err %v", got.Payload, err)
	}
	if got.MaskedPayload() != "not json \x00\xff 138****5678" {
		t.Errorf("MaskedPayload = %q", got.MaskedPayload())
	}
}

func TestListFilters(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	for i, code := range []string{"isv.BIND_CONFLICT", "isp.SYSTEM_ERROR", "isv.NO_NOT_EXIST", "isv.BIND_CONFLICT", "asynq.Archived"} {
		r := rec(fmt.Sprintf("id%d", i), code, t0.Add(time.Duration(i)*time.Minute))
		if i == 4 {
			r.Queue = "other"
		}
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(f Filter) []string {
		t.Helper()
		rs, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.TaskID)
		}
		return out
	}
	cases := []struct {
		name string
		f    Filter
		want string
	}{
		{"all", Filter{}, "[id0 id1 id2 id3 id4]"},
		{"code", Filter{Codes: []string{"isv.BIND_CONFLICT"}}, "[id0 id3]"},
		{"codes", Filter{Codes: []string{"isp.SYSTEM_ERROR", "isv.NO_NOT_EXIST"}}, "[id1 id2]"},
		{"prefix", Filter{Codes: []string{"isv.*"}}, "[id0 id2 id3]"},
		{"since", Filter{Since: t0.Add(2 * time.Minute)}, "[id2 id3 id4]"},
		{"until", Filter{Until: t0.Add(2 * time.Minute)}, "[id0 id1]"},
		{"window", Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, "[id1 id2]"},
		{"limit", Filter{Limit: 2}, "[id0 id1]"},
		{"code+limit", Filter{Codes: []string{"isv.*"}, Limit: 2}, "[id0 id2]"},
		{"queue", Filter{Queue: "other"}, "[id4]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(ids(c.f)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestCountOldestDelete(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	if _, ok, err := s.Oldest(ctx); ok || err != nil {
		t.Fatalf("Oldest of empty store: %v %v", ok, err)
	}
	for i := range 3 {
		if err := s.Put(ctx, rec(fmt.Sprint(i), "x", t0.Add(time.Duration(2-i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Count(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Count = %d %v", n, err)
	}
	old, ok, err := s.Oldest(ctx)
	if err != nil || !ok || !old.Equal(t0) {
		t.Fatalf("Oldest = %v %v %v, want %v", old, ok, err, t0)
	}
	if err := s.Delete(ctx, "2", "missing"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(ctx); n != 2 {
		t.Errorf("Count after Delete = %d", n)
	}
	if _, ok, _ := s.Get(ctx, "2"); ok {
		t.Error("deleted record still there")
	}
	if old, _, _ := s.Oldest(ctx); !old.Equal(t0.Add(time.Second)) {
		t.Errorf("Oldest after Delete = %v", old)
	}
}

// putMany writes n records quickly, bypassing Put's read-merge cycle.
func putMany(t *testing.T, s *Store, n int, died func(i int) time.Time) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			r := rec(fmt.Sprintf("r%05d", i), "isv.BIND_CONFLICT", died(i))
			b, _ := json.Marshal(r)
			p.Set(ctx, s.RecordKey(r.TaskID), b, 0)
			p.ZAdd(ctx, s.IndexKey(), redis.Z{Score: float64(r.DiedAt.UnixMilli()), Member: r.TaskID})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEachPages(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		died func(i int) time.Time
	}{
		{"distinct", func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }},
		{"same millisecond", func(int) time.Time { return t0 }},
		{"mixed", func(i int) time.Time { return t0.Add(time.Duration(i/700) * time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newStore(t)
			const n = 2345
			putMany(t, s, n, tc.died)
			seen := map[string]bool{}
			var last Record
			err := s.Each(ctx, Filter{}, func(r Record) error {
				if seen[r.TaskID] {
					t.Fatalf("record %s seen twice", r.TaskID)
				}
				if r.DiedAt.Before(last.DiedAt) {
					t.Fatalf("record %s out of order", r.TaskID)
				}
				seen[r.TaskID], last = true, r
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != n {
				t.Fatalf("Each saw %d records, want %d", len(seen), n)
			}

			// Deleting while walking skips nothing.
			count := 0
			err = s.Each(ctx, Filter{}, func(r Record) error {
				count++
				if count%3 != 0 {
					return s.Delete(ctx, r.TaskID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if count != n {
				t.Fatalf("Each deleting saw %d records, want %d", count, n)
			}
			if left, _ := s.Count(ctx); left != n/3 {
				t.Errorf("left %d records, want %d", left, n/3)
			}
		})
	}
}

func TestEachStops(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	putMany(t, s, 10, func(i int) time.Time { return t0 })
	stop := fmt.Errorf("stop")
	calls := 0
	err := s.Each(ctx, Filter{}, func(Record) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("Each returned %v after %d calls", err, calls)
	}
}

func TestRecordString(t *testing.T) {
	r := rec("id1", "isv.BIND_CONFLICT", t0)
	r.Message = "B 13987654321 in use"
	r.SubsId, r.OperateType = "1000000768790001", "updateNoB"
	got := r.String()
	want := "task id1 (queue q) dead at 2030-01-02T03:04:05Z: isv.BIND_CONFLICT (permanent): B 139****4321 in use; SubsId 1000000768790001 updateNoB; 1 attempts"
	if got != want {
		t.Errorf("String =\n%s\nwant\n%s", got, want)
	}
}

// countHook counts the commands a client sends, by name.
type countHook map[string]int

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h[cmd.Name()]++
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h[c.Name()]++
		}
		return next(ctx, cmds)
	}
}

func TestEachResumesWithinScore(t *testing.T) {
	ctx := context.Background()
	s, _, ns := newStore(t)
	const n = 2345
	putMany(t, s, n, func(int) time.Time { return t0 })
	counted := redistest.Client(t)
	hook := countHook{}
	counted.AddHook(hook)
	cs := &Store{Redis: counted, Prefix: ns}
	seen := 0
	if err := cs.Each(ctx, Filter{}, func(Record) error { seen++; return nil }); err != nil {
		t.Fatal(err)
	}
	if seen != n {
		t.Fatalf("saw %d records, want %d", seen, n)
	}
	if got, want := hook["zrangebyscore"], n/pageSize+2; got > want || got == 0 {
		t.Errorf("%d ZRANGEBYSCORE for %d records of one score, want at most %d", got, n, want)
	}
}

func TestDeleteIfUnchanged(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	r := rec("x", "isv.BIND_CONFLICT", t0)
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	stored, err := s.raw(ctx, "x")
	if err != nil || stored == nil {
		t.Fatalf("raw: %q %v", stored, err)
	}
	r.Attempts = 9 // the job died again meanwhile
	if err := s.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.deleteIfUnchanged(ctx, "x", stored); ok || err != nil {
		t.Fatalf("deleted a changed record: %v %v", ok, err)
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Fatalf("index lost the record")
	}
	stored, _ = s.raw(ctx, "x")
	if ok, err := s.deleteIfUnchanged(ctx, "x", stored); !ok || err != nil {
		t.Fatalf("did not delete: %v %v", ok, err)
	}
	if n, _ := s.Count(ctx); n != 0 {
		t.Fatalf("index kept the record")
	}
}

func TestPayloadKeptByteForByte(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	for i, p := range []string{
		`{"OutId":"a&b<c>","SubsId":"1"}`,
		"{ \"SubsId\" : \"1\",\n \"OutId\": \"x\" }",
		`{"RingConfig":"{\"k\":\"\u00e9\"}"}`,
	} {
		r := rec(fmt.Sprint(i), "x", t0)
		r.SetPayload([]byte(p))
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Get(ctx, r.TaskID)
		if err != nil || string(got.Payload) != p {
			t.Errorf("payload %q came back as %q (%v)", p, got.Payload, err)
		}
		if got.SubsId != "1" && i < 2 {
			t.Errorf("SubsId not read from %q", p)
		}
	}
}
