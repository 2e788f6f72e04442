package enqueuecli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/admin"
)

func runQueue(ctx context.Context, args []string, e env) int {
	const name = "enqueue queue"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(e.stderr, queueHelp)
			return exitUsage
		}
		fmt.Fprint(e.stdout, queueHelp)
		return exitOK
	}
	verb := args[0]
	switch verb {
	case "pause", "resume", "status":
	default:
		fmt.Fprintf(e.stderr, "%s: unknown command %q: want pause, resume or status (see enqueue queue --help)\n", name, verb)
		return exitUsage
	}
	sc := newSub(name+" "+verb, e)
	var newQueue bool
	if verb != "status" {
		sc.set.FlagSet().BoolVar(&newQueue, "new-queue", false, "")
	}
	if err := sc.parse(args[1:], e, queueHelp); err != nil {
		return fail(e, name, err)
	}
	if verb != "status" && len(sc.pos) == 0 {
		return fail(e, name, usagef("%s needs the queues to %s, e.g. enqueue queue %s dyplsq-bulk", verb, verb, verb))
	}
	rdb, _, err := sc.open(ctx)
	if err != nil {
		return fail(e, name, err)
	}
	defer rdb.Close()
	halts := &admin.Halts{Redis: rdb, Prefix: sc.prefix()}
	c := &admin.Control{Inspector: asynq.NewInspectorFromRedisClient(rdb), Halts: halts}
	if verb != "status" && !newQueue {
		if err := admin.CheckQueues(c.Inspector, sc.pos...); err != nil {
			return fail(e, name+" "+verb, usagef("%s; nothing was %sd. To %s it anyway (a queue a worker will serve), add --new-queue", err, verb, verb))
		}
	}
	switch verb {
	case "pause":
		if err := c.Pause(ctx, sc.pos...); err != nil {
			return fail(e, name, err)
		}
		fmt.Fprintf(e.stdout, "paused %v: workers take no new jobs from them (running jobs finish); resume with: enqueue queue resume %s\n", sc.pos, joinArgs(sc.pos))
		return exitOK
	case "resume":
		if err := c.Resume(ctx, sc.pos...); err != nil {
			return fail(e, name, err)
		}
		fmt.Fprintf(e.stdout, "resumed %v\n", sc.pos)
		return exitOK
	}
	qs, hs, err := c.Status(ctx, sc.pos...)
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
	if len(hs) == 0 {
		fmt.Fprintln(e.stdout, "no worker is halted")
		return exitOK
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintln(e.stdout, haltReason(hs))
	return exitGaveUp
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
