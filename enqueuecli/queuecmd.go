package enqueuecli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/admin"
)

func runQueue(ctx context.Context, args []string, e env) int {
	const name = "enqueue queue"
	verb, code, ok := verbOf(e, name, queueHelp, args, "pause", "resume", "probe", "status")
	if !ok {
		return code
	}
	sc := newSub(name+" "+verb, e)
	var newQueue bool
	if verb != "status" {
		sc.set.FlagSet().BoolVar(&newQueue, "new-queue", false, "")
	}
	if err := sc.parse(args[1:], e, queueHelp); err != nil {
		return fail(e, name, err)
	}
	if (verb == "pause" || verb == "resume") && len(sc.pos) == 0 {
		return fail(e, name, usagef("%s needs the queues to %s, e.g. enqueue queue %s dyplsq-bulk", verb, verb, verb))
	}
	rdb, _, err := sc.open(ctx)
	if err != nil {
		return fail(e, name, err)
	}
	defer rdb.Close()
	halts := &admin.Halts{Redis: rdb, Prefix: sc.prefix()}
	c := &admin.Control{Inspector: asynq.NewInspectorFromRedisClient(rdb), Halts: halts}
	if !newQueue {
		if err := admin.CheckQueuesOrShards(ctx, rdb, sc.prefix(), c.Inspector, sc.pos...); err != nil {
			if verb == "status" {
				return fail(e, name+" "+verb, usagef("%s", err))
			}
			return fail(e, name+" "+verb, usagef("%s; nothing was %sd. To %s it anyway (a queue a worker will serve), add --new-queue", err, verb, verb))
		}
	}
	// A split queue is its shards too.
	var queues []string
	for _, q := range sc.pos {
		qs, err := batchQueues(ctx, rdb, c.Inspector, sc.prefix(), q)
		if err != nil {
			return fail(e, name, err)
		}
		queues = append(queues, qs...)
	}
	switch verb {
	case "pause":
		if err := c.Pause(ctx, queues...); err != nil {
			return fail(e, name, err)
		}
		fmt.Fprintf(e.stdout, "paused %v: workers take no new jobs from them (running jobs finish); resume with: enqueue queue resume %s\n", queues, joinArgs(sc.pos))
		return exitOK
	case "resume":
		if err := c.Resume(ctx, queues...); err != nil {
			return fail(e, name, err)
		}
		fmt.Fprintf(e.stdout, "resumed %v\n", queues)
		return exitOK
	}
	if verb == "probe" {
		return queueProbe(ctx, e, c, queues)
	}
	return queueStatus(ctx, e, name, c, queues)
}

// queueStatus prints the state of queues (every queue when none is named),
// the workers and the halts. It fails when a queue with jobs waiting has
// no live worker or a worker is halted.
func queueStatus(ctx context.Context, e env, name string, c *admin.Control, queues []string) int {
	qs, hs, err := c.Status(ctx, queues...)
	if err != nil {
		return fail(e, name, err)
	}
	ws, err := c.Workers(ctx)
	if err != nil {
		return fail(e, name, err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tSTATE\tSIZE\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tCOMPLETED\tLATENCY\tPROCESSED TODAY\tFAILED TODAY")
	for _, q := range qs {
		state := "running"
		if q.Paused {
			state = "paused"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", q.Queue, state, q.Size, q.Pending, q.Active,
			q.Scheduled, q.Retry, q.Archived, q.Completed, q.Latency.Round(time.Millisecond), q.Processed, q.Failed)
	}
	if len(qs) == 0 {
		fmt.Fprintln(tw, "(no queues yet)")
	}
	tw.Flush()
	fmt.Fprintln(e.stdout)
	workerTable(e.stdout, ws)
	code := exitOK
	for _, q := range admin.Unserved(qs, ws) {
		fmt.Fprintf(e.stdout, "no live worker serves %s, which has %d jobs waiting (pending %d, retry %d, scheduled %d): start a worker with WORKER_QUEUES naming it\n",
			q.Queue, q.Pending+q.Retry+q.Scheduled, q.Pending, q.Retry, q.Scheduled)
		code = exitGaveUp
	}
	if len(hs) == 0 {
		fmt.Fprintln(e.stdout, "no worker is halted")
		return code
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintln(e.stdout, haltReason(hs))
	return exitGaveUp
}

// workerTable lists the live workers.
func workerTable(w io.Writer, ws []admin.WorkerStatus) {
	if len(ws) == 0 {
		fmt.Fprintln(w, "no live worker (none sent a heartbeat in the last 10 s)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHEARTBEAT\tSTARTED\tQUEUES\tCONCURRENCY\tRUNNING\tSTATE")
	for _, x := range ws {
		qs := make([]string, 0, len(x.Queues))
		for q, wt := range x.Queues {
			qs = append(qs, fmt.Sprintf("%s:%d", q, wt))
		}
		slices.Sort(qs)
		state := x.Status
		if x.Halt != nil {
			state = "halted: " + x.Halt.Code
		}
		hb := "-"
		if !x.Heartbeat.IsZero() {
			hb = fmt.Sprintf("%s ago", max(time.Since(x.Heartbeat), 0).Round(time.Second))
		}
		fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%s\t%d\t%d\t%s\n", x.Host, x.PID, hb, x.Started.Local().Format(time.DateTime),
			strings.Join(qs, ","), x.Concurrency, x.Active, state)
	}
	tw.Flush()
}

// queueProbe asks halted workers to probe now and runs the jobs a halt put
// off in queues (every queue when none is named).
func queueProbe(ctx context.Context, e env, c *admin.Control, queues []string) int {
	const name = "enqueue queue probe"
	hs, err := c.Halts.List(ctx)
	if err != nil {
		return fail(e, name, err)
	}
	if err := c.Halts.RequestProbe(ctx); err != nil {
		return fail(e, name, err)
	}
	if len(queues) == 0 {
		if queues, err = c.Inspector.Queues(); err != nil {
			return fail(e, name, err)
		}
	}
	n, err := c.RunHalted(ctx, queues...)
	if err != nil {
		return fail(e, name, err)
	}
	fmt.Fprintf(e.stdout, "asked %d halted %s to probe now; %d %s put off by a halt run now\n",
		len(hs), plural(len(hs), "worker", "workers"), n, plural(n, "job", "jobs"))
	if len(hs) == 0 {
		return exitOK
	}
	// Wait for each worker's probe: its halt goes, or comes back with a
	// new probe time.
	before := map[string]time.Time{}
	for _, x := range hs {
		before[x.Worker] = x.NextProbe
	}
	deadline := time.Now().Add(probeWait)
	for {
		now, err := c.Halts.List(ctx)
		if err != nil {
			return fail(e, name, err)
		}
		var still []admin.Halt
		pending := 0
		for _, x := range now {
			old, ok := before[x.Worker]
			switch {
			case !ok:
			case x.NextProbe.Equal(old):
				pending++
			default:
				still = append(still, x)
			}
		}
		if pending == 0 || !time.Now().Before(deadline) {
			if len(still) == 0 && pending == 0 {
				fmt.Fprintln(e.stdout, "the probes succeeded: no worker is halted")
				return exitOK
			}
			if pending > 0 {
				fmt.Fprintf(e.stdout, "%d %s did not probe within %s (is a job waiting in the halt? see enqueue queue status)\n", pending, plural(pending, "worker", "workers"), probeWait)
			}
			if len(still) > 0 {
				fmt.Fprintln(e.stdout, haltReason(still))
			}
			return exitGaveUp
		}
		select {
		case <-ctx.Done():
			return exitInterrupted
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// probeWait is how long queue probe waits for the workers' probes.
var probeWait = 15 * time.Second

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinArgs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += shellQuote(x)
	}
	return s
}
