package enqueuecli

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/dyplsq/dyplsq/envflag"
	"github.com/dyplsq/dyplsq/tasks"
)

// settingsHelp is the part of envflag's usage that lists the settings read
// from the environment.
func settingsHelp(s *envflag.Set) string {
	var b bytes.Buffer
	s.Usage(&b)
	t := b.String()
	i := strings.Index(t, "Settings (")
	if i < 0 {
		return ""
	}
	t = t[i:]
	if j := strings.Index(t, "\nOther flags:"); j >= 0 {
		t = t[:j]
	}
	return strings.TrimRight(t, "\n") + "\n"
}

const mainHelp = `enqueue queues Dyplsapi binding updates (UpdateSubscription calls) from a CSV
or JSON Lines file, follows them to their outcome, and works the dead-letter
queue. The dyplsq worker runs the jobs.

Usage:
  enqueue [flags] FILE|-                   queue every row of FILE (- reads stdin)
  enqueue batch status|cancel [BATCH]      follow, or cancel, a batch
  enqueue dlq list|export|requeue|purge    work the dead letters
  enqueue queue pause|resume|probe|status  control the queues

"enqueue batch --help", "enqueue dlq --help" and "enqueue queue --help" tell
more about those commands.

The file
  CSV (with or without a BOM, CRLF, LF or CR line ends, quoted fields)
  whose first line names the columns, in any case; or JSON Lines, one JSON
  object per line. Text is UTF-8, or UTF-16 with a byte-order mark (Excel's
  "Unicode text"), or what --encoding names; a file that is not UTF-8 (GBK
  from Excel or WPS, say) is refused with one line, before anything is
  queued. Keep ids and phone numbers as text: format those columns as Text
  in Excel before typing or pasting, so that 13800138000 does not become
  1.38001E+10 and a landline keeps its leading 0. The format is --format if given, else the extension's
  (.csv; .jsonl, .ndjson, .json), else the first character's ({ is JSON
  Lines). The columns, or keys, are the API's parameters:
    ` + "%s" + `
  Columns starting with _ are ignored: notes, or the _code, _message,
  _task_id, _idempotency_key and _exported_at of a dead-letter export (a
  row exported from a dead job may not carry that job's IdempotencyKey: it
  would be a duplicate of the dead job). Any other column is an error. One row is
  one UpdateSubscription call; the OperateType says which field it sets:
    PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA
    FC100000000000001,1000000768790001,17000000000,updateNoA,13800138000

What happens
  1. Every row is validated before anything is queued. Each problem prints as
     FILE:LINE: Field: reason. If any row is invalid nothing is queued (exit
     1), unless --skip-invalid queues the valid rows.
  2. The rows go to the bulk queue, each with a version in line order: a
     worker applies only the newest version of a binding field, so of two
     rows for one field the later one wins. A progress bar shows on a
     terminal, and a summary line always: read, valid, queued, already
     queued, invalid, rows/s.
  3. The file becomes a batch named by its content (batch b...), whatever
     the flags. Running the same file again within the batch window (7 days)
     queues nothing twice: after Ctrl-C, a crash, or Redis lost for longer
     than --redis-timeout, run the same command again and it queues only the
     rest, to the batch's queue (a --queue naming another queue is refused).
     To queue the same rows again as a new batch, change the file.
     At most --max-pending rows of the batch wait in Redis at once (10000
     by default); the command queues more as workers end rows, so it runs
     until the last rows are queued.
  4. --wait follows the batch until every row has ended (applied, superseded
     or dead), then prints the rows by outcome and code. --report FILE writes
     one CSV row per input row: line, SubsId, OperateType, task_id, outcome,
     code, message, RequestId (and PhoneNoX and the value set, masked).

Examples
  # Check a file; queue nothing:
  enqueue --dry-run updates.csv
  # Queue it, follow it until every row has ended, and report each row:
  enqueue --wait --report result.csv updates.csv
  # Queue the valid rows only:
  enqueue --skip-invalid updates.csv
  # Queue from stdin:
  zcat updates.jsonl.gz | enqueue -
  # List the recent batches, or follow one:
  enqueue batch status
  enqueue batch status --wait bq4hz7kpmw2rtx9ca

Exit status
  0 done; 1 rows invalid, or jobs dead (with --wait); 2 usage, configuration
  or Redis error; 3 --wait gave up (workers halted, --wait-timeout, or the
  batch was cancelled); 130 interrupted (run the same command to resume).

Flags
  --format csv|jsonl    the input format (default: by extension or content)
  --encoding NAME       the file's text encoding: utf-8, gbk, gb18030 or
                        utf-16 (default: UTF-8, or UTF-16 by its byte-order
                        mark)
  --queue NAME          queue to put the jobs in (default dyplsq-bulk; the
                        worker serves it after the live queue, so a big batch
                        never starves live updates). A queue nothing was ever
                        queued to and no worker serves is refused as a typo
  --new-queue           accept a --queue that is not in use yet
  --skip-invalid        queue the valid rows even if some are invalid; the
                        invalid ones are recorded, and reported, as invalid
  --dry-run             validate only: print the problems and the summary
  --wait                follow the batch until every row has ended, showing
                        applied, superseded, dead, retrying and halted counts
  --wait-timeout D      stop following after D (exit 3), e.g. 30m (default 0:
                        no limit); a halt of the workers stops it at once
  --report FILE         write one CSV row per input row with its outcome
                        (after --wait, the final ones); - writes to stdout
  --show-numbers        show phone numbers in full in the report (default:
                        masked as 138****5678); the file is then created 0600
  --redis-timeout D     how long to retry while Redis is unreachable before
                        giving up with exit 2 (default 60s)
  --concurrency N       Enqueue calls in flight at once (default %d)
`

func enqueueHelp(s *envflag.Set) string {
	return fmt.Sprintf(mainHelp, wrapList(tasks.KnownColumns, 4, 78), defaultConcurrency) + "\n" + settingsHelp(s)
}

// wrapList joins items with ", " in lines of at most width, indenting the
// lines after the first by indent spaces.
func wrapList(items []string, indent, width int) string {
	var b strings.Builder
	col := indent
	for i, it := range items {
		s := it
		if i < len(items)-1 {
			s += ","
		}
		if i > 0 {
			if col+1+len(s) > width {
				b.WriteString("\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(s)
		col += len(s)
	}
	return b.String()
}

const batchHelp = `enqueue batch shows and cancels batches: the files queued by enqueue.

Usage:
  enqueue batch status [--wait] [--wait-timeout D] [BATCH]
  enqueue batch cancel BATCH

status without BATCH lists the batches of the batch window, newest first.
With BATCH it shows the batch (file, queue, state, rows) and its rows by
outcome and code; --wait follows it until every row has ended, with the
exit status of enqueue --wait. A batch's id is printed by enqueue when it
queues the file (batch b...).

cancel stops the batch at once, for the file that should not have been
queued: it marks the batch cancelled, and from then on no worker calls the
API for a row of it (a worker checks the mark when it picks a row and ends
the row cancelled, also one that waited for a halt or the rate limit).
Rows being run at that moment finish; rows retrying or halted, whose
earlier attempt may have applied them, are run at once so that a worker
ends each: cancelled, or applied if QuerySubscriptionDetail shows the
earlier attempt applied it. cancel waits for both, then prints the final
counts: applied, superseded, dead, cancelled (no call after the cancel).
Then it removes the cancelled jobs from the queue. Running
the same file again queues nothing; rows already applied stay applied.

A batch whose enqueue stopped (Ctrl-C, a crash) and was not run again shows
as interrupted after 2 minutes: run the same command to queue the rest.

Examples
  # List the batches of the last 7 days:
  enqueue batch status
  # Show one, then follow it for at most an hour:
  enqueue batch status bq4hz7kpmw2rtx9ca
  enqueue batch status --wait --wait-timeout 1h bq4hz7kpmw2rtx9ca
  # The wrong file went out: remove what has not run yet.
  enqueue batch cancel bq4hz7kpmw2rtx9ca

Exit status: 0 done; 1 jobs dead (status --wait); 2 usage, configuration
or Redis error, or no such batch; 3 --wait gave up.
`

const dlqHelp = `enqueue dlq works the dead letters: jobs that ended dead (a permanent error
code such as isv.NO_NOT_EXIST, attempts used up, max age passed, or a
malformed payload). dyplsq keeps a record of each until it is requeued or
purged; asynq's own archive trims itself silently, the record does not.

Usage:
  enqueue dlq list    [filters] [--limit N]
  enqueue dlq export  [filters] --out FILE [--force]
  enqueue dlq requeue [filters] [--dry-run]
  enqueue dlq purge   [filters] [--dry-run] [--all]

list     prints the dead letters, oldest first: when, task id, code, the
         binding, the RequestId and the message (phone numbers masked), and
         how many matched the filters.
export   writes them as a CSV that enqueue reads back: the API columns, plus
         _code, _message, _task_id, _idempotency_key, _exported_at and
         _request_id (not queued; the IdempotencyKey column is left empty,
         since the key's task id is the dead job's). The file is created
         0600, since it holds full phone numbers; an existing file is
         replaced only with --force. Fix the rows, then queue the file with enqueue:
         the rows get new versions, and enqueue prints the purge that removes
         the dead letters of the rows it queued, and only those.
requeue  sends the jobs back to their queue as they were: same task id, same
         version (so a row overtaken by a newer update is superseded, not
         applied), with a fresh attempt budget. The record goes.
purge    deletes the records and their archived jobs. Without a filter it
         needs --all. A record that changed while purge ran (its job died
         again) is kept and counted "changed".

Filters
  --code C      only this code; repeat it or give a comma list for several;
                a trailing * matches a prefix (--code 'isv.*')
  --since T     died at or after T; --until T: died before T. T is a time
                (2025-01-31, "2025-01-31 15:04", RFC 3339) or an age
                (90m, 36h, 7d) counted back from now
  --queue Q     only jobs of queue Q
  --batch B     only jobs of the CLI batch B
  --task ID     only the job with task id ID; repeat it or give a comma list
  --limit N     list: show at most N (default 100; 0 shows all)

Examples
  # What died in the last day because a binding does not exist?
  enqueue dlq list --code isv.NO_NOT_EXIST --since 24h
  # What of one batch died?
  enqueue dlq list --batch bq4hz7kpmw2rtx9ca
  # Fix bad numbers: export them, correct the file, queue it, then run the
  # purge it prints (enqueue dlq purge --until <export time> --task <ids>).
  enqueue dlq export --code isv.MOBILE_NUMBER_ILLEGAL --out fix.csv
  enqueue fix.csv
  # Send back what died of server errors, after a look at what would go:
  enqueue dlq requeue --code 'isp.*' --dry-run
  enqueue dlq requeue --code 'isp.*'

Exit status: 0 done; 1 some records could not be requeued or purged; 2
usage, configuration or Redis error.
`

const queueHelp = `enqueue queue pauses, resumes, probes and reports on queues.

Usage:
  enqueue queue pause [--new-queue] QUEUE...
  enqueue queue resume [--new-queue] QUEUE...
  enqueue queue probe [QUEUE...]
  enqueue queue status [QUEUE...]

pause stops workers taking jobs from the queues (jobs running finish);
resume lets them take jobs again. status shows the size of each queue (every
queue when none is named) by state, whether it is paused, the live workers
(heartbeat, queues served, concurrency, jobs running, halt) and the halted
workers with the reason and what to check: a worker halts when an answer
says every call would fail (bad credentials, a closed account) and resumes by
itself once a probe call succeeds. probe, once the cause is fixed, makes the
halted workers probe now instead of at their next probe time (up to 5
minutes away), runs now the jobs of the queues (every queue when none is
named) that a halt put off, and waits up to 15 s for the probes' results.

The default queues are dyplsq-live (the Go API) and dyplsq-bulk (this CLI).
pause and resume refuse a queue that is not in use (not a default queue,
never queued to, served by no worker), most likely a typo; --new-queue
accepts it.

Examples
  # Hold the bulk queue while live updates go on, then let it run again:
  enqueue queue pause dyplsq-bulk
  enqueue queue resume dyplsq-bulk
  # Sizes, pauses, workers and halts:
  enqueue queue status
  # The secret is fixed: resume the halted workers now.
  enqueue queue probe

Exit status: 0 done (status: 3 when workers are halted or a queue with jobs
waiting, not paused, has no live worker; probe: 3 when a worker is still halted); 2 usage,
configuration or Redis error.
`
