package enqueuecli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/mask"
)

// pollEvery is how often --wait reads the batch record.
var pollEvery = 500 * time.Millisecond

// followResult says why following a batch stopped.
type followResult struct {
	st      batch.Status
	halts   []admin.Halt
	timeout bool
}

// follow reads the counters of batch id until every row has ended, workers
// are halted, or timeout (0: none) passes, showing live counts on w.
func follow(ctx context.Context, store *batch.Store, halts *admin.Halts, guard *redisGuard, id string,
	timeout time.Duration, w io.Writer, terminal bool) (followResult, error) {
	start := time.Now()
	var deadline time.Time
	if timeout > 0 {
		deadline = start.Add(timeout)
	}
	lastPlain := time.Time{}
	lastLine, lastCounts := "", ""
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		var res followResult
		err := guard.do(ctx, func(ctx context.Context) error {
			st, err := store.Status(ctx, id)
			if err != nil {
				if err == batch.ErrNotFound {
					return permanentError{err}
				}
				return err
			}
			hs, err := halts.List(ctx)
			if err != nil {
				return err
			}
			res = followResult{st: st, halts: hs}
			return nil
		})
		if err != nil {
			if terminal && lastLine != "" {
				fmt.Fprintln(w)
			}
			return res, err
		}
		line := liveLine(res.st, time.Since(start))
		counts := liveLine(res.st, 0)
		switch {
		case terminal:
			fmt.Fprintf(w, "\r\033[K%s", line)
			lastLine = line
		case lastPlain.IsZero(),
			counts != lastCounts && time.Since(lastPlain) >= plainEvery,
			time.Since(lastPlain) >= 12*plainEvery:
			// Plain output: on change at most every few seconds, else a
			// line a minute to show it is alive.
			fmt.Fprintln(w, "enqueue: "+line)
			lastPlain, lastLine, lastCounts = time.Now(), line, counts
		}
		stop := res.st.Done() || len(res.halts) > 0 || res.st.State == batch.StateInterrupted && res.st.Ended() >= res.st.Queued
		if !deadline.IsZero() && !time.Now().Before(deadline) && !stop {
			res.timeout = true
			stop = true
		}
		if stop {
			if terminal {
				fmt.Fprintln(w)
			}
			return res, nil
		}
		select {
		case <-ctx.Done():
			if terminal {
				fmt.Fprintln(w)
			}
			return res, ctx.Err()
		case <-t.C:
		}
	}
}

// liveLine is the one-line state of a batch while following it.
func liveLine(st batch.Status, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "applied %d, superseded %d, dead %d, retrying %d, halted %d, pending %d",
		st.Applied, st.Superseded, st.Dead, st.Retrying, st.Halted, st.Pending)
	if st.Cancelled > 0 {
		fmt.Fprintf(&b, ", cancelled %d", st.Cancelled)
	}
	if st.Duplicate > 0 {
		fmt.Fprintf(&b, ", duplicate %d", st.Duplicate)
	}
	fmt.Fprintf(&b, " (%d of %d ended", st.Ended(), st.Queued)
	switch st.State {
	case batch.StateQueueing:
		b.WriteString(", still queueing")
	case batch.StateInterrupted:
		b.WriteString(", queueing interrupted")
	}
	fmt.Fprintf(&b, ", %s)", elapsed.Round(time.Second))
	return b.String()
}

// outcomeTable writes the rows of a batch by outcome and code.
func outcomeTable(w io.Writer, st batch.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tCODE\tROWS\t")
	coded := map[string]int64{}
	for _, c := range st.Codes {
		coded[c.Outcome] += c.Rows
	}
	var total int64
	for _, o := range batch.Outcomes {
		n := st.Counts.Of(o)
		if n == 0 {
			continue
		}
		total += n
		for _, c := range st.Codes {
			if c.Outcome == o {
				fmt.Fprintf(tw, "%s\t%s\t%d\t\n", o, c.Code, c.Rows)
			}
		}
		if rest := n - coded[o]; rest > 0 {
			fmt.Fprintf(tw, "%s\t-\t%d\t\n", o, rest)
		}
	}
	fmt.Fprintf(tw, "total\t\t%d\t\n", total)
	tw.Flush()
}

// haltReason describes the halts for a person.
func haltReason(hs []admin.Halt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the workers are halted: an answer from Dyplsapi says every call would fail, so they stopped calling it (nothing is lost: jobs wait in the queue, no attempt is counted, and the workers resume by themselves once a probe call succeeds)")
	for _, h := range hs {
		if h.Hint != "" {
			// What to check first; the API's text (a string-to-sign can be
			// hundreds of characters) shortened after it.
			fmt.Fprintf(&b, "\n  worker %s halted since %s by %s: %s; the API said: %s", h.Worker, h.Since.Local().Format(time.DateTime),
				h.Code, h.Hint, shortMessage(mask.Text(h.Message)))
		} else {
			fmt.Fprintf(&b, "\n  worker %s halted since %s by %s: %s", h.Worker, h.Since.Local().Format(time.DateTime), h.Code, mask.Text(h.Message))
		}
		if !h.NextProbe.IsZero() {
			fmt.Fprintf(&b, " (next probe %s)", h.NextProbe.Local().Format(time.TimeOnly))
		}
	}
	return b.String()
}

// shortMessage is an API message cut to 120 characters, saying where the
// whole one is.
func shortMessage(m string) string {
	if s := shorten(m, 120); s != strings.Join(strings.Fields(m), " ") {
		return s + " (the whole message: /readyz with the monitor's credentials, or the worker's log)"
	}
	return m
}
