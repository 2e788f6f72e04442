package monitor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// view is what the page template shows. Every string in it is masked.
type view struct {
	Now              time.Time
	Monitoring, Self string

	Batches  []batchView
	BatchErr string

	Dead    deadView
	DeadErr string

	Halts   []haltView
	HaltErr string

	Limiter    limiterView
	LimiterErr string

	Lookup *lookupView
}

type batchView struct {
	ID, File, Queue, State, Origin string
	Created, QueuedAt              time.Time
	Valid, Queued, Ended           int64
	Percent                        float64
	Outcomes                       []outcomeCount
	Codes                          []batch.CodeCount
}

type outcomeCount struct {
	Outcome string
	Rows    int64
}

type deadView struct {
	Total   int64
	Scanned int
	Partial bool // more records than were read
	Codes   []deadCode
}

type deadCode struct {
	Code                 string
	Count                int
	Oldest, Newest       time.Time
	LatestTask, Message  string
	LatestSubs, LatestOp string
}

type haltView struct {
	Worker, Host, Code, Hint, Message string
	Since, NextProbe, UpdatedAt       time.Time
}

type limiterView struct {
	Configured bool // this process runs a limiter (DYPLS_QPS above 0)
	Rate       float64
	Stored     bool // the shared state exists in Redis
	StoredRate float64
	LastChange time.Time
	LastCut    time.Time
	Shares     []shareView
}

type shareView struct {
	covered          time.Duration
	Span             string
	Calls, Throttled float64
	Share            float64
}

// loadBatches reads the newest batches of the batch window.
func (p *page) loadBatches(ctx context.Context) ([]batchView, string) {
	list, err := p.batches.List(ctx, pageBatches)
	if err != nil {
		return nil, errText(err)
	}
	out := make([]batchView, 0, len(list))
	for _, st := range list {
		b := batchView{
			ID: mask.Text(st.ID), File: mask.Text(st.File), Queue: mask.Text(st.Queue),
			State: st.State, Origin: mask.Text(st.Origin), Created: st.Created, QueuedAt: st.QueuedAt,
			Valid: int64(st.ValidRows), Queued: st.Queued, Ended: st.Ended(),
		}
		total := max(b.Valid, b.Queued)
		if total > 0 {
			b.Percent = float64(b.Ended) / float64(total)
		}
		for _, o := range batch.Outcomes {
			if n := st.Of(o); n > 0 {
				b.Outcomes = append(b.Outcomes, outcomeCount{Outcome: o, Rows: n})
			}
		}
		for _, c := range st.Codes {
			b.Codes = append(b.Codes, batch.CodeCount{Outcome: c.Outcome, Code: mask.Text(c.Code), Rows: c.Rows})
		}
		out = append(out, b)
	}
	return out, ""
}

// errEnough stops a walk of the dead letters.
var errEnough = errors.New("enough")

// loadDead counts the dead letters by code, with the first and last death
// of each and the newest record's task and message. It reads at most
// pageDeadScan records, oldest first, and says when there are more.
func (p *page) loadDead(ctx context.Context) (deadView, string) {
	var v deadView
	total, err := p.dead.Count(ctx)
	if err != nil {
		return v, errText(err)
	}
	v.Total = total
	byCode := map[string]*deadCode{}
	err = p.dead.Each(ctx, deadletter.Filter{}, func(r deadletter.Record) error {
		if v.Scanned >= pageDeadScan {
			v.Partial = true
			return errEnough
		}
		v.Scanned++
		c := byCode[r.Code]
		if c == nil {
			c = &deadCode{Code: mask.Text(r.Code), Oldest: r.DiedAt}
			byCode[r.Code] = c
		}
		c.Count++
		if !r.DiedAt.Before(c.Newest) {
			c.Newest = r.DiedAt
			c.LatestTask, c.Message = mask.Text(r.TaskID), mask.Text(r.Message)
			c.LatestSubs, c.LatestOp = mask.Text(r.SubsId), mask.Text(r.OperateType)
		}
		if r.DiedAt.Before(c.Oldest) {
			c.Oldest = r.DiedAt
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return v, errText(err)
	}
	for _, c := range byCode {
		v.Codes = append(v.Codes, *c)
	}
	sort.Slice(v.Codes, func(i, j int) bool {
		if v.Codes[i].Count != v.Codes[j].Count {
			return v.Codes[i].Count > v.Codes[j].Count
		}
		return v.Codes[i].Code < v.Codes[j].Code
	})
	return v, ""
}

// loadHalts reads the halted workers of the fleet.
func (p *page) loadHalts(ctx context.Context) ([]haltView, string) {
	hs, err := p.halts.List(ctx)
	if err != nil {
		return nil, errText(err)
	}
	out := make([]haltView, 0, len(hs))
	for _, h := range hs {
		out = append(out, haltView{
			Worker: mask.Text(h.Worker), Host: mask.Text(h.Host), Code: mask.Text(h.Code),
			Hint: mask.Text(h.Hint), Message: mask.Text(h.Message),
			Since: h.Since, NextProbe: h.NextProbe, UpdatedAt: h.UpdatedAt,
		})
	}
	return out, ""
}

// loadLimiter reads the shared rate's state in Redis (the rate set at its
// last change, and when it was last cut) and, from this process's
// metrics, the rate its limiter last read and the share of its calls
// throttled over the last minute and the last 15 minutes.
func (p *page) loadLimiter(ctx context.Context) (limiterView, string) {
	var v limiterView
	s, rate, ok, _ := limiterStats(p.metrics)
	p.samples.add(s)
	v.Configured, v.Rate = ok, rate
	for _, span := range []time.Duration{throttleShort, throttleLong} {
		covered, calls, thr := p.samples.share(span)
		if n := len(v.Shares); n > 0 && v.Shares[n-1].covered == covered {
			break // no older samples: the longer span would repeat the shorter
		}
		sv := shareView{Span: "last " + fmtSpan(covered), Calls: calls, Throttled: thr, covered: covered}
		if calls > 0 {
			sv.Share = thr / calls
		}
		v.Shares = append(v.Shares, sv)
	}
	m, err := p.rdb.HGetAll(ctx, tasks.LimitKey(p.prefix)).Result()
	if err != nil {
		return v, errText(err)
	}
	if r, err := strconv.ParseFloat(m["rate"], 64); err == nil {
		v.Stored, v.StoredRate = true, r
	}
	v.LastChange = msTime(m["at"])
	v.LastCut = msTime(m["cut"])
	return v, ""
}

// fmtSpan writes a span of samples for people: "4 min 20 s".
func fmtSpan(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
	return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
}

// msTime parses a Unix time in milliseconds as Redis scripts store it.
func msTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
