package enqueuecli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// Columns an export adds after the API columns. enqueue queues none of
// them, but reads _task_id and _exported_at to say which dead letters a
// queued file replaces.
const (
	colTaskID         = "_task_id"
	colIdempotencyKey = "_idempotency_key"
	colExportedAt     = "_exported_at"
)

// exportExtra are the columns an export adds, in order. The job's
// IdempotencyKey goes to _idempotency_key, not to IdempotencyKey: its task
// id is the dead job's, so a fixed row queued with it would be a duplicate
// of the dead job and never run.
var exportExtra = []string{"_code", "_message", colTaskID, colIdempotencyKey, colExportedAt, "_request_id"}

// codesFlag collects --code values, repeated or comma-separated.
type codesFlag []string

func (c *codesFlag) String() string { return strings.Join(*c, ",") }

func (c *codesFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*c = append(*c, p)
		}
	}
	return nil
}

// timeFlag reads a time or an age counted back from now.
type timeFlag struct {
	t   time.Time
	now func() time.Time
}

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(v string) error {
	t, err := parseWhen(strings.TrimSpace(v), f.now())
	if err != nil {
		return err
	}
	f.t = t
	return nil
}

// parseWhen reads a time (2025-01-31, "2025-01-31 15:04[:05]" local time,
// RFC 3339) or an age (90m, 36h, 7d) before now.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		if days, err := strconv.ParseFloat(n, 64); err == nil && days >= 0 {
			return now.Add(-time.Duration(days * float64(24*time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2025-01-31, \"2025-01-31 15:04\", RFC 3339) nor an age (90m, 36h, 7d)", v)
}

func runDLQ(ctx context.Context, args []string, e env) int {
	const name = "enqueue dlq"
	verb, code, ok := verbOf(e, name, dlqHelp, args, "list", "export", "requeue", "purge")
	if !ok {
		return code
	}
	sc := newSub(name+" "+verb, e)
	fl := newDLQFlags(sc.set.FlagSet(), verb)
	if err := sc.parse(args[1:], e, dlqHelp); err != nil {
		return fail(e, name, err)
	}
	if err := fl.check(verb, sc.pos); err != nil {
		return fail(e, name, err)
	}
	f, limit, out, dryRun := fl.filter(), fl.limit, fl.out, fl.dryRun
	rdb, _, err := sc.open(ctx)
	if err != nil {
		return fail(e, name, err)
	}
	defer rdb.Close()
	store := &deadletter.Store{Redis: rdb, Prefix: sc.prefix()}
	switch verb {
	case "list":
		return dlqList(ctx, e, store, f, limit)
	case "export":
		return dlqExport(ctx, e, store, f, out)
	}
	batches := &batch.Store{Redis: rdb, Prefix: sc.prefix()}
	rq := &deadletter.Requeuer{Store: store, Inspector: asynq.NewInspectorFromRedisClient(rdb), Client: asynq.NewClientFromRedisClient(rdb),
		Cancelled: batches.Cancelled}
	var outcomes []deadletter.Outcome
	if verb == "requeue" {
		outcomes, err = rq.Requeue(ctx, f, dryRun)
	} else {
		outcomes, err = rq.Purge(ctx, f, dryRun)
	}
	return dlqOutcomes(e, name+" "+verb, outcomes, err, dryRun)
}

// dlqFlags are the flags of a dlq command: the filter, and each verb's own.
type dlqFlags struct {
	codes, taskIDs      codesFlag
	since, until        *timeFlag
	queue, out, batchID string
	limit               int
	dryRun, all, force  bool
}

// newDLQFlags defines on fs the flags of the dlq command verb.
func newDLQFlags(fs *flag.FlagSet, verb string) *dlqFlags {
	d := &dlqFlags{since: &timeFlag{now: time.Now}, until: &timeFlag{now: time.Now}}
	fs.Var(&d.codes, "code", "")
	fs.Var(d.since, "since", "")
	fs.Var(d.until, "until", "")
	fs.StringVar(&d.queue, "queue", "", "")
	fs.StringVar(&d.batchID, "batch", "", "")
	fs.Var(&d.taskIDs, "task", "")
	switch verb {
	case "list":
		fs.IntVar(&d.limit, "limit", 100, "")
	case "export":
		fs.StringVar(&d.out, "out", "", "")
		fs.BoolVar(&d.force, "force", false, "")
	case "requeue":
		fs.BoolVar(&d.dryRun, "dry-run", false, "")
	case "purge":
		fs.BoolVar(&d.dryRun, "dry-run", false, "")
		fs.BoolVar(&d.all, "all", false, "")
	}
	return d
}

// filter is the dead letters the flags select.
func (d *dlqFlags) filter() deadletter.Filter {
	return deadletter.Filter{Codes: d.codes, Since: d.since.t, Until: d.until.t, Queue: d.queue, TaskIDs: d.taskIDs, Batch: d.batchID}
}

// filtered reports whether any filter flag is set.
func (d *dlqFlags) filtered() bool {
	return len(d.codes) > 0 || !d.since.t.IsZero() || !d.until.t.IsZero() || d.queue != "" || len(d.taskIDs) > 0 || d.batchID != ""
}

// check returns the usage error of the parsed flags and arguments pos of
// the dlq command verb, or nil.
func (d *dlqFlags) check(verb string, pos []string) error {
	if len(pos) > 0 {
		return usagef("%s takes no arguments, got %q: filter with --code, --since, --until, --queue, --batch, --task (see enqueue dlq --help)", verb, pos[0])
	}
	if d.batchID != "" && !batch.ValidID(d.batchID) {
		return usagef("--batch %q is not a batch id: ids look like bq4hz7kpmw2rtx9ca (see enqueue batch status)", d.batchID)
	}
	switch {
	case verb == "export" && d.out == "":
		return usagef("export needs --out FILE: the file is created 0600, as it holds full phone numbers")
	case verb == "export" && d.out == "-":
		return usagef("export writes to a file (created 0600, as it holds full phone numbers), not to stdout")
	case verb == "purge" && !d.filtered() && !d.all:
		return usagef("purge without a filter deletes every dead letter: add --all to mean it, or filter with --code, --since, --until, --queue, --batch, --task")
	case verb == "export" && !d.force && fileExists(d.out):
		return usagef("--out %s: the file exists; add --force to replace it", d.out)
	case verb == "list" && d.limit < 0:
		return usagef("--limit %d: want 0 (all) or more", d.limit)
	}
	return nil
}

func dlqList(ctx context.Context, e env, store *deadletter.Store, f deadletter.Filter, limit int) int {
	var recs []deadletter.Record
	matched := 0
	err := store.Each(ctx, f, func(r deadletter.Record) error {
		matched++
		if limit == 0 || len(recs) < limit {
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return fail(e, "enqueue dlq list", err)
	}
	total, err := store.Count(ctx)
	if err != nil {
		return fail(e, "enqueue dlq list", err)
	}
	if len(recs) == 0 {
		fmt.Fprintf(e.stdout, "no dead letters match (%d in all)\n", total)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DIED\tTASK ID\tQUEUE\tCODE\tREASON\tATTEMPTS\tSubsId\tOperateType\tBATCH:LINE\tRequestId\tMESSAGE")
	for _, r := range recs {
		bl := "-"
		if r.Batch != "" {
			bl = fmt.Sprintf("%s:%d", r.Batch, r.Line)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.DiedAt.Local().Format(time.DateTime), r.TaskID, r.Queue,
			orDash(r.Code), orDash(r.Reason), r.Attempts, orDash(r.SubsId), orDash(r.OperateType), bl, orDash(r.RequestID), shorten(mask.Text(r.Message), 100))
	}
	tw.Flush()
	more := ""
	if len(recs) < matched {
		more = " (--limit 0 shows all)"
	}
	fmt.Fprintf(e.stdout, "%d of %d matching dead letters shown%s; %d in all\n", len(recs), matched, more, total)
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

func dlqExport(ctx context.Context, e env, store *deadletter.Store, f deadletter.Filter, path string) int {
	const name = "enqueue dlq export"
	w, commit, err := createOutput(path, e.stdout, false)
	if err != nil {
		return fail(e, name, err)
	}
	defer func() { _ = commit(false) }()
	cw := csv.NewWriter(w)
	_ = cw.Write(append(append([]string(nil), tasks.KnownColumns...), exportExtra...))
	exportedAt := time.Now().UTC().Format(time.RFC3339Nano)
	n, unreadable := 0, 0
	err = store.Each(ctx, f, func(r deadletter.Record) error {
		row, ok := exportRow(r, exportedAt)
		if !ok {
			unreadable++
		}
		n++
		return cw.Write(row)
	})
	if err != nil {
		return fail(e, name, err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fail(e, name, err)
	}
	if err := commit(true); err != nil {
		return fail(e, name, err)
	}
	fmt.Fprintf(e.stdout, "exported %d dead letters to %s (mode 0600: it holds full phone numbers)\n", n, path)
	if unreadable > 0 {
		fmt.Fprintf(e.stdout, "%d of them had unreadable payloads: their rows hold only SubsId and OperateType\n", unreadable)
	}
	if n > 0 {
		fmt.Fprintf(e.stdout, "Fix the rows, then queue them as new versions with: enqueue %s\n(it then says how to remove the dead letters of the rows it queued; keep them until then)\n", shellQuote(path))
	}
	return exitOK
}

// exportRow is the CSV row of one dead letter: the job's columns (its
// idempotency key moved to an extra column, so that the row is queued as a
// new version), then the extra columns. ok is false when the payload could
// not be read: the row then holds only SubsId and OperateType. Every cell
// is valid UTF-8.
func exportRow(r deadletter.Record, exportedAt string) (row []string, ok bool) {
	var u tasks.Update
	msg := r.Message
	ok = true
	if err := json.Unmarshal(r.Payload, &u); err != nil {
		ok = false
		u = tasks.Update{SubsId: r.SubsId, OperateType: r.OperateType}
		msg = "payload unreadable, fill in the row: " + mask.Text(err.Error())
	}
	key := u.IdempotencyKey
	u.IdempotencyKey = ""
	row = make([]string, 0, len(tasks.KnownColumns)+len(exportExtra))
	for _, c := range tasks.KnownColumns {
		row = append(row, *tasks.FieldValue(&u, c))
	}
	row = append(row, r.Code, mask.Text(msg), r.TaskID, key, exportedAt, r.RequestID)
	for i, c := range row {
		// A job put on a queue by someone else may carry any bytes; the
		// file must stay readable by enqueue, which takes UTF-8.
		row[i] = strings.ToValidUTF8(c, "\uFFFD")
	}
	return row, ok
}

func dlqOutcomes(e env, name string, outs []deadletter.Outcome, err error, dryRun bool) int {
	counts := map[string]int{}
	failed := 0
	for _, o := range outs {
		counts[o.Code]++
		if o.Code == deadletter.OutcomeFailed || o.Err != nil {
			failed++
			msg := "unknown error"
			if o.Err != nil {
				msg = o.Err.Error()
			}
			fmt.Fprintf(e.stderr, "%s: task %s: %s\n", name, o.TaskID, mask.Text(msg))
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	if len(parts) == 0 {
		parts = append(parts, "no dead letters match")
	}
	prefix := ""
	if dryRun {
		prefix = "dry run, nothing changed: "
	}
	fmt.Fprintf(e.stdout, "%s%s\n", prefix, strings.Join(parts, ", "))
	if n := counts[deadletter.OutcomeChanged]; n > 0 {
		fmt.Fprintf(e.stdout, "%d records changed while this ran (their jobs died again): they were kept; run the command again to work them\n", n)
	}
	if n := counts[deadletter.OutcomeBatchCancelled]; n > 0 {
		fmt.Fprintf(e.stdout, "%d records are rows of a cancelled batch: they were kept, not requeued (a worker would end them without a call). To run them, export them (enqueue dlq export --batch BATCH --out FILE) and queue the file\n", n)
	}
	if n := counts[deadletter.OutcomeTooOld]; n > 0 {
		fmt.Fprintf(e.stdout, "%d records are of jobs enqueued more than %d days ago: they were kept, not requeued, because the worker no longer remembers which newer updates of their fields were applied since. To apply them anyway as new updates, export them (enqueue dlq export --out FILE) and queue the file\n",
			n, int(tasks.VersionWindow.Hours()/24))
	}
	if n := counts[deadletter.OutcomeRanAgain]; n > 0 {
		verb := "their records were deleted"
		if dryRun {
			verb = "their records would be deleted"
		}
		fmt.Fprintf(e.stdout, "%d jobs ran again after they died (from the web UI's archive) and completed, so they are not dead: %s\n", n, verb)
	}
	if n := counts[deadletter.OutcomeLive]; n > 0 {
		fmt.Fprintf(e.stdout, "%d jobs are live in asynq under the same task id (queued, running or recently done): their records were kept\n", n)
	}
	if err != nil {
		return fail(e, name, err)
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
