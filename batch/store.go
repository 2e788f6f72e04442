package batch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// DefaultTTL is the batch window of a [Store] whose TTL is zero: how long a
// batch record is kept, and so how long re-running the same file queues
// nothing.
const DefaultTTL = 7 * 24 * time.Hour

// BlockLines is how many lines share one block of versions.
const BlockLines = 1024

// BucketLines is how many lines share one hash of row details.
const BucketLines = 128

// MaxMessage bounds the bytes of a row's message kept in the record; the
// dead-letter record keeps the whole text.
const MaxMessage = 1000

// Outcomes of a row, as [RowState.Outcome], [Row.Outcome] and the counters
// name them.
const (
	OutcomePending    = "pending"    // queued; no worker has reported on it yet
	OutcomeApplied    = "applied"    // ended: the API applied the update
	OutcomeSuperseded = "superseded" // ended: a newer version of the field was applied first
	OutcomeDead       = "dead"       // ended: dead-lettered
	OutcomeRetrying   = "retrying"   // on the way: throttled or transient failure
	OutcomeHalted     = "halted"     // on the way: held by a halted worker
	OutcomeCancelled  = "cancelled"  // ended: removed by batch cancel before it ran
	OutcomeInvalid    = "invalid"    // not queued: the row is invalid (--skip-invalid)
	OutcomeDuplicate  = "duplicate"  // ended: its IdempotencyKey was already queued by another producer
)

// CountQueued names the counter of rows queued, beside the outcomes' own,
// in the batch record ("n:queued") and in reports.
const CountQueued = "queued"

// outcomes lists the outcomes by their 4-bit code in the rows string;
// code 0 is a line not queued.
var outcomes = [...]string{"", OutcomePending, OutcomeApplied, OutcomeSuperseded, OutcomeDead,
	OutcomeRetrying, OutcomeHalted, OutcomeCancelled, OutcomeInvalid, OutcomeDuplicate}

// Outcomes lists every outcome a row can have, in the order reports show
// them.
var Outcomes = append([]string(nil), outcomes[1:]...)

func outcomeCode(o string) (int, bool) {
	for i, name := range outcomes {
		if i > 0 && name == o {
			return i, true
		}
	}
	return 0, false
}

// Ended reports whether outcome o ends a row: applied, superseded, dead,
// cancelled or duplicate.
func Ended(o string) bool {
	switch o {
	case OutcomeApplied, OutcomeSuperseded, OutcomeDead, OutcomeCancelled, OutcomeDuplicate:
		return true
	}
	return false
}

// States of a batch, as [Info.State] names them.
const (
	StateQueueing  = "queueing"  // rows are being queued (or the run stopped midway: re-run to resume)
	StateQueued    = "queued"    // every valid row is queued
	StateCancelled = "cancelled" // batch cancel stopped the rows not yet called
	// StateInterrupted is a queueing batch whose run stopped: no row was
	// recorded for [StaleAfter]. It is read, never stored: a re-run of the
	// file resumes it.
	StateInterrupted = "interrupted"
)

// StaleAfter is how long a queueing batch may record no row before
// [Store.Status] calls it interrupted. A running enqueue records a chunk of
// rows every few milliseconds, and waits out a Redis outage for at most its
// --redis-timeout (60 s by default).
const StaleAfter = 2 * time.Minute

// ErrNotFound is returned for a batch that does not exist (never queued, or
// its window has passed).
var ErrNotFound = errors.New("batch not found (it was never queued here, or its record expired)")

// Store keeps batch records in Redis. It is safe for concurrent use.
type Store struct {
	// Redis is the server holding the records and the version counter.
	Redis redis.UniversalClient
	// Prefix starts every key; empty means [tasks.DefaultKeyPrefix]. It
	// must match the worker's key prefix.
	Prefix string
	// TTL is the batch window: a new batch's record expires this long after
	// it was created; zero means [DefaultTTL]. Writes to an existing batch
	// keep its expiry.
	TTL time.Duration
}

func (s *Store) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return DefaultTTL
}

// NewHasher returns a writer that hashes an input file into its batch id.
// Write the file's bytes to it, exactly as read, then call ID. The id
// depends on the rows only: the bytes and the format they are read as (the
// same bytes read as CSV or as JSON Lines are other rows). Flags such as
// the queue are not part of it, so a re-run with other flags finds the
// same batch and queues nothing twice.
func NewHasher(format string) *Hasher {
	h := &Hasher{h: sha256.New()}
	fmt.Fprintf(h.h, "dyplsq batch v2\x00%s\x00", format)
	return h
}

// NewQueueHasher is the hasher of batch ids made by earlier versions, which
// also hashed the queue. A run looks for a batch under this id too, so that
// a file queued before the upgrade, within its batch window, is not queued
// again; it can go once every such batch's window has passed.
func NewQueueHasher(format, queue string) *Hasher {
	h := &Hasher{h: sha256.New()}
	fmt.Fprintf(h.h, "dyplsq batch v1\x00%s\x00%s\x00", format, queue)
	return h
}

// Hasher computes a batch id; see [NewHasher].
type Hasher struct{ h hash.Hash }

// Write adds p to the hash. It never fails.
func (h *Hasher) Write(p []byte) (int, error) { return h.h.Write(p) }

// idAlphabet spells batch ids: 32 symbols without 0, 1, l and o, so that no
// part of an id looks like a phone number to the masking of logs and output
// (mask.Text), or is misread when typed.
const idAlphabet = "abcdefghijkmnpqrstuvwxyz23456789"

// ID returns the batch id: "b" and 16 symbols (80 bits) of the hash.
func (h *Hasher) ID() string {
	sum := h.h.Sum(nil)
	var acc uint64
	var bits uint
	out := make([]byte, 0, 17)
	out = append(out, 'b')
	for _, c := range sum {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 && len(out) < 17 {
			bits -= 5
			out = append(out, idAlphabet[(acc>>bits)&31])
		}
		if len(out) == 17 {
			break
		}
	}
	return string(out)
}

// IDOf returns the batch id of content read from r; see [NewHasher].
func IDOf(format string, r io.Reader) (string, error) {
	h := NewHasher(format)
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return h.ID(), nil
}

// ValidID reports whether id has the shape of a batch id.
func ValidID(id string) bool {
	if len(id) != 17 || id[0] != 'b' {
		return false
	}
	for i := 1; i < len(id); i++ {
		if !strings.ContainsRune(idAlphabet, rune(id[i])) {
			return false
		}
	}
	return true
}

// TaskID is the asynq task id of line of batch id: "<id>_<line>". The web
// UI (asynqmon) shows a task id up to its first "-", so the id has none:
// every row shows whole.
func TaskID(id string, line int) string { return id + "_" + strconv.Itoa(line) }

// LegacyTaskID is the task id of line of batch id in a batch created
// before [TaskID] took its present form: "<id>-<line>", which asynqmon
// shows as "<id>" for every row. [Info.TaskID] picks the batch's form.
func LegacyTaskID(id string, line int) string { return id + "-" + strconv.Itoa(line) }

// ParseTaskID splits a task id made by [TaskID] or [LegacyTaskID].
func ParseTaskID(taskID string) (id string, line int, ok bool) {
	i := strings.LastIndexAny(taskID, "_-")
	if i < 0 || !ValidID(taskID[:i]) {
		return "", 0, false
	}
	n, err := strconv.Atoi(taskID[i+1:])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return taskID[:i], n, true
}

// Info describes a batch.
type Info struct {
	ID     string // batch id
	File   string // the input as named on the command line ("stdin" for -)
	Format string // csv or jsonl
	Queue  string // the queue its jobs go to
	Origin string // user@host that created it

	Created  time.Time // when it was first queued
	Expires  time.Time // when its record goes, and re-running the file queues again
	QueuedAt time.Time // when every valid row was queued (zero until then)

	Lines       int // last line of the input
	Rows        int // data rows in the input
	ValidRows   int // rows that passed validation when it was created
	InvalidRows int // rows that did not

	State string // one of the State constants

	// LegacyTaskIDs reports a batch created before task ids took the form
	// of [TaskID]: its rows' tasks have [LegacyTaskID] ids.
	LegacyTaskIDs bool
}

// TaskID is the task id of line of the batch, in the batch's form.
func (info Info) TaskID(line int) string {
	if info.LegacyTaskIDs {
		return LegacyTaskID(info.ID, line)
	}
	return TaskID(info.ID, line)
}

// taskIDsField is the batch hash field that marks task ids of the form of
// [TaskID]; a batch without it has legacy ids.
const taskIDsField = "task_ids"

// Counts are the rows of a batch per outcome.
type Counts struct {
	// Queued is every row queued (or found already queued by its
	// IdempotencyKey), whatever its outcome since.
	Queued int64
	// Rows per outcome.
	Pending, Applied, Superseded, Dead, Retrying, Halted, Cancelled, Invalid, Duplicate int64
}

// Ended is the number of queued rows that have ended.
func (c Counts) Ended() int64 {
	return c.Applied + c.Superseded + c.Dead + c.Cancelled + c.Duplicate
}

// Of returns the count of outcome o.
func (c Counts) Of(o string) int64 {
	switch o {
	case OutcomePending:
		return c.Pending
	case OutcomeApplied:
		return c.Applied
	case OutcomeSuperseded:
		return c.Superseded
	case OutcomeDead:
		return c.Dead
	case OutcomeRetrying:
		return c.Retrying
	case OutcomeHalted:
		return c.Halted
	case OutcomeCancelled:
		return c.Cancelled
	case OutcomeInvalid:
		return c.Invalid
	case OutcomeDuplicate:
		return c.Duplicate
	}
	return 0
}

func (c *Counts) set(o string, n int64) {
	switch o {
	case CountQueued:
		c.Queued = n
	case OutcomePending:
		c.Pending = n
	case OutcomeApplied:
		c.Applied = n
	case OutcomeSuperseded:
		c.Superseded = n
	case OutcomeDead:
		c.Dead = n
	case OutcomeRetrying:
		c.Retrying = n
	case OutcomeHalted:
		c.Halted = n
	case OutcomeCancelled:
		c.Cancelled = n
	case OutcomeInvalid:
		c.Invalid = n
	case OutcomeDuplicate:
		c.Duplicate = n
	}
}

// CodeCount is the number of rows with one outcome and code.
type CodeCount struct {
	Outcome, Code string
	Rows          int64
}

// Status is a batch's Info with its counters.
type Status struct {
	Info
	Counts
	// Codes counts rows by outcome and code (for example dead,
	// isv.NO_NOT_EXIST), in the order of [Outcomes] then by code; rows
	// without a code are not listed.
	Codes []CodeCount
}

// Done reports whether every valid row is queued and every queued row has
// ended (or the batch was cancelled and its remaining rows have ended).
func (st Status) Done() bool {
	switch st.State {
	case StateQueued, StateCancelled:
		return st.Ended() >= st.Queued
	}
	return false
}

// Begin creates the record of a new batch from info (ID, File, Format,
// Queue, Origin, Lines, Rows, ValidRows, InvalidRows; Created, Expires and
// State are set here, Created and Expires by Redis's clock), or finds the
// existing one. It returns the stored Info and whether it created it.
func (s *Store) Begin(ctx context.Context, info Info) (Info, bool, error) {
	if !ValidID(info.ID) {
		return Info{}, false, fmt.Errorf("batch: %q is not a batch id", info.ID)
	}
	info.State = StateQueueing
	info.QueuedAt = time.Time{}
	args := []any{s.ttl().Milliseconds()}
	for k, v := range info.fields() {
		args = append(args, k, v)
	}
	// Redis's clock stamps the batch and sets its expiry: a CLI whose clock
	// is off neither shortens nor stretches the window of re-runs.
	res, err := beginScript.Run(ctx, s.Redis, []string{s.Key(info.ID), s.RowsKey(info.ID), s.VersionsKey(info.ID)}, args...).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		return Info{}, false, fmt.Errorf("batch: create %s: %w", info.ID, err)
	}
	created, now := res[0], time.UnixMilli(res[1])
	if created == 1 {
		pipe := s.Redis.Pipeline()
		pipe.ZAdd(ctx, s.IndexKey(), redis.Z{Score: float64(now.UnixMilli()), Member: info.ID})
		pipe.ZRemRangeByScore(ctx, s.IndexKey(), "-inf", strconv.FormatInt(now.Add(-s.ttl()).UnixMilli(), 10))
		if _, err := pipe.Exec(ctx); err != nil {
			return Info{}, false, fmt.Errorf("batch: index %s: %w", info.ID, err)
		}
	}
	st, err := s.Status(ctx, info.ID)
	if err != nil {
		return Info{}, false, err
	}
	return st.Info, created == 1, nil
}

func (info Info) fields() map[string]string {
	return map[string]string{
		"id": info.ID, "file": info.File, "format": info.Format, "queue": info.Queue, "origin": info.Origin,
		"lines": strconv.Itoa(info.Lines), "rows": strconv.Itoa(info.Rows),
		"valid": strconv.Itoa(info.ValidRows), "invalid": strconv.Itoa(info.InvalidRows),
		"state": info.State, taskIDsField: "2",
	}
}

// Status returns the Info and counters of batch id, or [ErrNotFound].
func (s *Store) Status(ctx context.Context, id string) (Status, error) {
	// Redis's clock judges whether a queueing batch went quiet: the
	// timestamps in the record are Redis's.
	var get *redis.MapStringStringCmd
	var now *redis.TimeCmd
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGetAll(ctx, s.Key(id))
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		return Status{}, fmt.Errorf("batch: read %s: %w", id, err)
	}
	m := get.Val()
	if len(m) == 0 || m["expires_at"] == "" {
		return Status{}, ErrNotFound
	}
	return parseStatus(m, now.Val()), nil
}

func parseStatus(m map[string]string, now time.Time) Status {
	ms := func(k string) time.Time {
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil || n == 0 {
			return time.Time{}
		}
		return time.UnixMilli(n)
	}
	num := func(k string) int { n, _ := strconv.Atoi(m[k]); return n }
	st := Status{Info: Info{
		ID: m["id"], File: m["file"], Format: m["format"], Queue: m["queue"], Origin: m["origin"],
		Created: ms("created_at"), Expires: ms("expires_at"), QueuedAt: ms("queued_at"),
		Lines: num("lines"), Rows: num("rows"), ValidRows: num("valid"), InvalidRows: num("invalid"),
		State: m["state"], LegacyTaskIDs: m[taskIDsField] == "",
	}}
	if st.State == StateQueueing {
		last := ms("active_at")
		if c := ms("created_at"); c.After(last) {
			last = c
		}
		if now.Sub(last) > StaleAfter {
			st.State = StateInterrupted
		}
	}
	byOutcome := map[string][]CodeCount{}
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case strings.HasPrefix(k, "n:"):
			st.Counts.set(k[2:], n)
		case strings.HasPrefix(k, "c:") && n > 0:
			o, code, ok := strings.Cut(k[2:], ":")
			if ok {
				byOutcome[o] = append(byOutcome[o], CodeCount{Outcome: o, Code: code, Rows: n})
			}
		}
	}
	for _, o := range Outcomes {
		cs := byOutcome[o]
		sortCodes(cs)
		st.Codes = append(st.Codes, cs...)
	}
	return st
}

// sortCodes orders by rows, most first, then by code.
func sortCodes(cs []CodeCount) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && (cs[j].Rows > cs[j-1].Rows || cs[j].Rows == cs[j-1].Rows && cs[j].Code < cs[j-1].Code); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// List returns the batches created within the batch window, newest first,
// at most limit of them (0: all).
func (s *Store) List(ctx context.Context, limit int) ([]Status, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	ids, err := s.Redis.ZRevRange(ctx, s.IndexKey(), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", err)
	}
	var out []Status
	for _, id := range ids {
		st, err := s.Status(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Complete marks batch id queued: every valid row of its input is queued.
// A cancelled batch stays cancelled. It returns the batch's state.
func (s *Store) Complete(ctx context.Context, id string) (string, error) {
	state, err := completeScript.Run(ctx, s.Redis, []string{s.Key(id)}).Text()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("batch: complete %s: %w", id, err)
	}
	return state, nil
}

// Cancel marks batch id cancelled and returns its state before. Rows it
// records afterwards are recorded cancelled instead of pending; removing the
// jobs already queued is the caller's (see [Store.Rows]).
func (s *Store) Cancel(ctx context.Context, id string) (string, error) {
	prev, err := cancelScript.Run(ctx, s.Redis, []string{s.Key(id)}).Text()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("batch: cancel %s: %w", id, err)
	}
	return prev, nil
}

// Cancelled reports whether batch id is cancelled: one read of one field,
// whatever the size of the batch. A worker asks before it runs a row of a
// batch, and ends the row cancelled, without calling the API, when it is.
// A batch that does not exist (never made, or its window passed) is not
// cancelled.
func (s *Store) Cancelled(ctx context.Context, id string) (bool, error) {
	st, err := s.Redis.HGet(ctx, s.Key(id), "state").Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("batch: read state of %s: %w", id, err)
	}
	return st == StateCancelled, nil
}

// CancelOpen ends cancelled every pending row of batch id (queued, and no
// worker has reported on it) from line first to last, except the lines in
// keep, with message as the rows' reason, and returns how many it ended.
// Rows that ended, or were never queued, are left as they are, and so are
// retrying and halted rows: an attempt of theirs was made, and its outcome
// may be unknown, so the worker ends them at its next pick-up, after
// reading the binding when it must. Lines are handled a page of
// 16 buckets per script call, each call atomic, counters moved exactly.
func (s *Store) CancelOpen(ctx context.Context, id string, first, last int, keep []int, message string) (int, error) {
	first = max(first, 1)
	detail := encodeDetail("", "", message)
	total := 0
	for lo := first; lo <= last; {
		b0 := lo / BucketLines
		hi := min(last, (b0+16)*BucketLines-1)
		keys := []string{s.Key(id), s.RowsKey(id)}
		for b := b0; b <= hi/BucketLines; b++ {
			keys = append(keys, s.BucketKey(id, b))
		}
		args := []any{b0, lo, hi, detail}
		for _, k := range keep {
			if k >= lo && k <= hi {
				args = append(args, k)
			}
		}
		n, err := cancelOpenScript.Run(ctx, s.Redis, keys, args...).Int()
		if err != nil {
			return total, fmt.Errorf("batch: cancel rows of %s: %w", id, err)
		}
		if n < 0 {
			return total, ErrNotFound
		}
		total += n
		lo = hi + 1
	}
	return total, nil
}

// Versions returns the first version of block (lines block·BlockLines to
// (block+1)·BlockLines-1) of batch id, taking n versions from the counter
// (tasks.NextVersions) the first time the block is asked for. n must cover
// the block's lines that can be queued (BlockLines, or fewer for the last
// block); it is ignored once the block is recorded. Concurrent callers get
// the same answer: the first recorded block wins.
func (s *Store) Versions(ctx context.Context, id string, block, n int) (int64, error) {
	key := s.VersionsKey(id)
	field := strconv.Itoa(block)
	v, err := s.Redis.HGet(ctx, key, field).Int64()
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("batch: read versions of %s: %w", id, err)
	}
	first, err := tasks.NextVersions(ctx, s.Redis, s.Prefix, int64(n))
	if err != nil {
		return 0, err
	}
	v, err = versionsScript.Run(ctx, s.Redis, []string{s.Key(id), key}, field, first).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("batch: record versions of %s: %w", id, err)
	}
	return v, nil
}

// Entry is one row the CLI records: queued (pending), invalid, or a
// duplicate of another producer's task.
type Entry struct {
	Line    int
	Outcome string // OutcomePending, OutcomeInvalid or OutcomeDuplicate
	// TaskID is the row's task id when it is not TaskID(batch, line) (a
	// row with an IdempotencyKey).
	TaskID string
	// Code and Message say why the row is invalid or a duplicate; Message
	// is masked here.
	Code, Message string
}

// Recorded is what [Store.Record] did.
type Recorded struct {
	// New is how many entries were recorded; the others already had an
	// outcome.
	New int
	// Cancelled reports that the batch is cancelled: pending entries were
	// recorded cancelled, and their jobs should be removed.
	Cancelled bool
}

// Record records entries of batch id whose lines have no outcome yet. A line
// that has one (recorded before, or already reported by a worker) is left as
// it is. Entries must lie within 16 buckets of [BucketLines] lines; each
// script call records at most recordPerCall of them.
func (s *Store) Record(ctx context.Context, id string, entries []Entry) (Recorded, error) {
	var out Recorded
	for len(entries) > 0 {
		n := min(len(entries), recordPerCall)
		rec, err := s.record(ctx, id, entries[:n])
		if err != nil {
			return out, err
		}
		out.New += rec.New
		out.Cancelled = out.Cancelled || rec.Cancelled
		entries = entries[n:]
	}
	return out, nil
}

// recordPerCall bounds the entries of one script call, so that each call
// stays short (Redis runs nothing else while a script runs) and its
// arguments stay well within what Lua can unpack.
const recordPerCall = 512

func (s *Store) record(ctx context.Context, id string, entries []Entry) (Recorded, error) {
	first, last := entries[0].Line/BucketLines, entries[0].Line/BucketLines
	for _, e := range entries {
		b := e.Line / BucketLines
		first, last = min(first, b), max(last, b)
	}
	if last-first >= 16 {
		return Recorded{}, fmt.Errorf("batch: Record: lines %d to %d span more than 16 buckets", first*BucketLines, (last+1)*BucketLines-1)
	}
	keys := []string{s.Key(id), s.RowsKey(id)}
	for b := first; b <= last; b++ {
		keys = append(keys, s.BucketKey(id, b))
	}
	args := make([]any, 0, 1+5*len(entries))
	args = append(args, first)
	for _, e := range entries {
		code, ok := outcomeCode(e.Outcome)
		if !ok || e.Line < 1 {
			return Recorded{}, fmt.Errorf("batch: Record: line %d outcome %q", e.Line, e.Outcome)
		}
		detail := ""
		if e.Code != "" || e.Message != "" {
			detail = encodeDetail(e.Code, "", e.Message)
		}
		args = append(args, e.Line, code, e.TaskID, detail, e.Code)
	}
	res, err := recordScript.Run(ctx, s.Redis, keys, args...).Int64Slice()
	if err != nil {
		return Recorded{}, fmt.Errorf("batch: record rows of %s: %w", id, err)
	}
	if res[0] < 0 {
		return Recorded{}, ErrNotFound
	}
	return Recorded{New: int(res[0]), Cancelled: res[1] == 1}, nil
}

// RowState is what a worker reports about one row.
type RowState struct {
	// Outcome is "applied", "superseded" or "dead" (ends), or "retrying"
	// or "halted" (on the way); "cancelled" and "pending" are accepted too.
	Outcome string
	// Code is the API code ("OK", "isv.NO_NOT_EXIST", ...) or dyplsq's own.
	Code string
	// Message is the reason, already masked by the caller; at most
	// MaxMessage bytes are kept.
	Message string
	// RequestID is the API's RequestId, if any.
	RequestID string
}

// Mark records the state of one row of batch id: the line's previous
// outcome and code are replaced, and the counters moved, in one atomic
// script on the batch's own keys (one Redis Cluster slot). Marking a batch
// that no longer exists (its window passed) does nothing and returns nil.
func (s *Store) Mark(ctx context.Context, id string, line int, st RowState) error {
	code, ok := outcomeCode(st.Outcome)
	if !ok || st.Outcome == OutcomeInvalid || st.Outcome == OutcomeDuplicate {
		return fmt.Errorf("batch: Mark: unknown outcome %q", st.Outcome)
	}
	if line < 1 {
		return fmt.Errorf("batch: Mark: line %d", line)
	}
	_, err := s.mark(ctx, id, line, code, st, false)
	return err
}

// MarkOpen is [Store.Mark] for a row that is still open (pending, retrying
// or halted): a row that has ended, or was never queued, is left as it is.
// It reports whether it changed the row. The check and the change are one
// script, so a report that ended the row first always wins.
func (s *Store) MarkOpen(ctx context.Context, id string, line int, st RowState) (bool, error) {
	code, ok := outcomeCode(st.Outcome)
	if !ok || st.Outcome == OutcomeInvalid || st.Outcome == OutcomeDuplicate {
		return false, fmt.Errorf("batch: MarkOpen: unknown outcome %q", st.Outcome)
	}
	if line < 1 {
		return false, fmt.Errorf("batch: MarkOpen: line %d", line)
	}
	return s.mark(ctx, id, line, code, st, true)
}

func (s *Store) mark(ctx context.Context, id string, line, code int, st RowState, onlyOpen bool) (bool, error) {
	detail := ""
	if st.Code != "" || st.Message != "" || st.RequestID != "" {
		detail = encodeDetail(st.Code, st.RequestID, st.Message)
	}
	open := ""
	if onlyOpen {
		open = "1"
	}
	keys := []string{s.Key(id), s.RowsKey(id), s.BucketKey(id, line/BucketLines)}
	old, err := markScript.Run(ctx, s.Redis, keys, line, code, detail, st.Code, open).Int()
	if err != nil {
		return false, fmt.Errorf("batch: mark %s line %d: %w", id, line, err)
	}
	return old >= 0, nil
}

// RowRef names one line of a batch.
type RowRef struct {
	Batch string
	Line  int
}

// Open reports for each row whether it is open: queued and not ended yet
// (pending, retrying or halted). Rows of batches that no longer exist are
// not open. It reads one byte per row, in one pipeline.
func (s *Store) Open(ctx context.Context, rows []RowRef) ([]bool, error) {
	out := make([]bool, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(rows))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range rows {
			at := int64(r.Line / 2)
			cmds[i] = p.GetRange(ctx, s.RowsKey(r.Batch), at, at)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("batch: read rows: %w", err)
	}
	for i, r := range rows {
		b, err := cmds[i].Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("batch: read rows of %s: %w", r.Batch, err)
		}
		switch decodeOutcomes(b, r.Line, r.Line)[0] {
		case OutcomePending, OutcomeRetrying, OutcomeHalted:
			out[i] = true
		}
	}
	return out, nil
}

// Row is the record of one line.
type Row struct {
	Line int
	// Outcome is "" for a line that was not queued (a header, a blank
	// line, or a row not reached yet).
	Outcome string
	// TaskID is the row's task id ("" when not queued).
	TaskID                   string
	Code, Message, RequestID string
}

// Outcomes returns the outcome of every line of batch id from first to last
// (inclusive), indexed from first; "" for a line not queued. It reads only
// the rows string: one GETRANGE for any range.
func (s *Store) Outcomes(ctx context.Context, id string, first, last int) ([]string, error) {
	if first < 0 || last < first {
		return nil, nil
	}
	b, err := s.Redis.GetRange(ctx, s.RowsKey(id), int64(first/2), int64(last/2)).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("batch: read rows of %s: %w", id, err)
	}
	return decodeOutcomes(b, first, last), nil
}

func decodeOutcomes(b []byte, first, last int) []string {
	out := make([]string, last-first+1)
	base := first / 2
	for l := first; l <= last; l++ {
		i := l/2 - base
		if i >= len(b) {
			break
		}
		c := b[i] & 0x0f
		if l%2 == 0 {
			c = b[i] >> 4
		}
		if int(c) < len(outcomes) {
			out[l-first] = outcomes[c]
		}
	}
	return out
}

// Rows returns the record of every line of batch id from first to last
// (inclusive), in line order, with the details reported for it.
func (s *Store) Rows(ctx context.Context, id string, first, last int) ([]Row, error) {
	if first < 1 {
		first = 1
	}
	if last < first {
		return nil, nil
	}
	pipe := s.Redis.Pipeline()
	formCmd := pipe.HGet(ctx, s.Key(id), taskIDsField)
	rowsCmd := pipe.GetRange(ctx, s.RowsKey(id), int64(first/2), int64(last/2))
	var buckets []*redis.MapStringStringCmd
	for b := first / BucketLines; b <= last/BucketLines; b++ {
		buckets = append(buckets, pipe.HGetAll(ctx, s.BucketKey(id, b)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("batch: read rows of %s: %w", id, err)
	}
	b, _ := rowsCmd.Bytes()
	info := Info{ID: id, LegacyTaskIDs: formCmd.Val() == ""}
	outs := decodeOutcomes(b, first, last)
	rows := make([]Row, 0, last-first+1)
	for l := first; l <= last; l++ {
		r := Row{Line: l, Outcome: outs[l-first]}
		m := buckets[l/BucketLines-first/BucketLines].Val()
		key := strconv.Itoa(l)
		if d, ok := m[key]; ok {
			r.Code, r.RequestID, r.Message = decodeDetail(d)
		}
		if r.Outcome != "" && r.Outcome != OutcomeInvalid {
			r.TaskID = info.TaskID(l)
			if t := m["t"+key]; t != "" {
				r.TaskID = t
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

const sep = "\x1f"

func encodeDetail(code, requestID, message string) string {
	message = mask.Text(message)
	if len(message) > MaxMessage {
		cut := MaxMessage
		for cut > 0 && !utf8.RuneStart(message[cut]) {
			cut--
		}
		message = message[:cut] + "…"
	}
	return code + sep + requestID + sep + message
}

func decodeDetail(d string) (code, requestID, message string) {
	code, rest, _ := strings.Cut(d, sep)
	requestID, message, _ = strings.Cut(rest, sep)
	return code, requestID, message
}
