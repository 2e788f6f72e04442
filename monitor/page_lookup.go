package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// lookupView is what the page shows of one binding: per field
// (OperateType) the last applied version with its RequestId, the calls in
// doubt, and the latest job dyplsq still knows of; then those jobs.
type lookupView struct {
	SubsId string
	Err    string
	Lock   string
	Fields []fieldView
	Jobs   []jobView
}

type fieldView struct {
	Op        string
	Applied   int64
	RequestID string
	InDoubt   []string // "version N (task T)"
	Latest    *jobView
}

type jobView struct {
	TaskID, Op, State, Code, Message, Queue string
	Version                                 int64
	Attempts                                int
	When                                    time.Time
}

// validSubsID accepts what a SubsId looks like (the API's are digits), and
// nothing that could reach outside the binding's hash tag.
var validSubsID = regexp.MustCompile(`^[0-9A-Za-z_.-]{1,64}$`)

// lookup reads everything dyplsq keeps about binding subs: its fence hash
// and lock, the state of its jobs that have not ended, and its dead
// letters (of the newest pageLookupDead records).
func (p *page) lookup(ctx context.Context, subs string) *lookupView {
	v := &lookupView{SubsId: mask.Text(subs)}
	if !validSubsID.MatchString(subs) {
		v.Err = "not a SubsId: letters, digits, '.', '_' and '-' only, at most 64"
		return v
	}
	fence, err := p.rdb.HGetAll(ctx, tasks.FenceKey(p.prefix, subs)).Result()
	if err != nil {
		v.Err = errText(err)
		return v
	}
	fields := parseFence(fence)
	if ttl, err := p.rdb.PTTL(ctx, tasks.LockKey(p.prefix, subs)).Result(); err == nil && ttl > 0 {
		v.Lock = "held by an attempt, " + ttl.Round(time.Millisecond).String() + " left"
	}
	jobs, err := p.jobStates(ctx, subs)
	if err == nil {
		var dead []jobView
		dead, err = p.deadOf(ctx, subs)
		jobs = append(jobs, dead...)
	}
	if err != nil {
		v.Err = errText(err)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Version > jobs[j].Version })
	for i := range jobs {
		f := fields[jobs[i].Op]
		if f == nil {
			f = &fieldView{Op: jobs[i].Op}
			fields[jobs[i].Op] = f
		}
		if f.Latest == nil {
			f.Latest = &jobs[i]
		}
	}
	for _, f := range fields {
		v.Fields = append(v.Fields, *f)
	}
	sort.Slice(v.Fields, func(i, j int) bool { return v.Fields[i].Op < v.Fields[j].Op })
	v.Jobs = jobs
	return v
}

// parseFence reads a fence hash: "<op>" the applied version, "r:<op>" its
// RequestId, "i:<op>:<task id>" an intent "version|deadline ms".
func parseFence(m map[string]string) map[string]*fieldView {
	fields := map[string]*fieldView{}
	get := func(op string) *fieldView {
		op = mask.Text(op)
		if fields[op] == nil {
			fields[op] = &fieldView{Op: op}
		}
		return fields[op]
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := m[k]
		switch {
		case strings.HasPrefix(k, "r:"):
			get(k[2:]).RequestID = mask.Text(val)
		case strings.HasPrefix(k, "i:"):
			op, task, ok := strings.Cut(k[2:], ":")
			ver, _, _ := strings.Cut(val, "|")
			if ok {
				f := get(op)
				f.InDoubt = append(f.InDoubt, mask.Text("version "+ver+" (task "+task+")"))
			}
		default:
			n, _ := strconv.ParseInt(val, 10, 64)
			get(k).Applied = n
		}
	}
	return fields
}

// jobStates reads the binding's job states (jobs not ended, or ended
// without a version of their own) and finds each job in asynq for its
// field, version and state.
func (p *page) jobStates(ctx context.Context, subs string) ([]jobView, error) {
	keys, err := p.scan(ctx, tasks.JobStateKey(p.prefix, subs, "*"))
	if err != nil {
		return nil, err
	}
	queues, err := p.insp.Queues()
	if err != nil {
		return nil, err
	}
	var out []jobView
	for _, k := range keys {
		task := strings.TrimPrefix(k, tasks.JobStateKey(p.prefix, subs, ""))
		if strings.Contains(task, ":") {
			continue // an earlier layout's key, read by the worker once
		}
		m, err := p.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		j := jobView{TaskID: mask.Text(task), State: "unknown to asynq", Code: mask.Text(m["last_code"]),
			Message: mask.Text(m["last_message"]), When: msTime(m["last_failure"])}
		j.Attempts, _ = strconv.Atoi(m["attempts"])
		j.Version, _ = strconv.ParseInt(m["version"], 10, 64)
		p.findTask(queues, task, &j)
		out = append(out, j)
	}
	return out, nil
}

// findTask fills j's queue, state, field and version from asynq's task.
func (p *page) findTask(queues []string, task string, j *jobView) {
	for _, q := range queues {
		info, err := p.insp.GetTaskInfo(q, task)
		if err != nil {
			continue
		}
		j.Queue, j.State = mask.Text(q), info.State.String()
		var u tasks.Update
		if json.Unmarshal(info.Payload, &u) == nil {
			j.Op = mask.Text(u.OperateType)
			if u.Meta != nil && u.Meta.Version > 0 {
				j.Version = u.Meta.Version
			}
		}
		if j.When.IsZero() {
			j.When = info.LastFailedAt
		}
		return
	}
}

// deadOf returns the dead letters of binding subs among the newest
// pageLookupDead records.
func (p *page) deadOf(ctx context.Context, subs string) ([]jobView, error) {
	total, err := p.dead.Count(ctx)
	if err != nil {
		return nil, err
	}
	f := deadletter.Filter{}
	if total > pageLookupDead {
		// The walk goes oldest first: start where the newest records begin.
		zs, err := p.rdb.ZRevRangeWithScores(ctx, p.dead.IndexKey(), pageLookupDead-1, pageLookupDead-1).Result()
		if err == nil && len(zs) == 1 {
			f.Since = time.UnixMilli(int64(zs[0].Score))
		}
	}
	var out []jobView
	err = p.dead.Each(ctx, f, func(r deadletter.Record) error {
		if r.SubsId == subs {
			out = append(out, jobView{TaskID: mask.Text(r.TaskID), Op: mask.Text(r.OperateType), State: "dead",
				Code: mask.Text(r.Code), Message: mask.Text(r.Message), Queue: mask.Text(r.Queue),
				Version: r.Version, Attempts: r.Attempts, When: r.DiedAt})
		}
		return nil
	})
	return out, err
}

// scan returns the keys matching pattern; on Redis Cluster it asks every
// primary (the binding's keys share one slot, so one of them has them all).
func (p *page) scan(ctx context.Context, pattern string) ([]string, error) {
	var keys []string
	each := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return iter.Err()
	}
	if cc, ok := p.rdb.(*redis.ClusterClient); ok {
		var mu = make(chan struct{}, 1)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu <- struct{}{}
			defer func() { <-mu }()
			return each(ctx, c)
		})
		return keys, err
	}
	if err := each(ctx, p.rdb); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	return keys, nil
}
