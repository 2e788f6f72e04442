package worker

// The checker: seeded, reproducible schedules of jobs, faults and operator
// actions against a real Redis, the real worker code, the real SDK and the
// simulator, with the product's guarantees checked once the faults stop.
//
// A schedule is a pure function of its seed (chkPlan): the bindings and
// fields, every job (source, value, enqueue wave), the API faults of each
// job's calls (simulator rules matched on the job's own value, so they hit
// the same job's n-th call whatever the interleaving), the Redis fault
// rates of each worker, the crash, the dead-letter requeues, the export and
// the operator's archives and runs in the web UI.
// Redis faults are decided per command by a hash of the seed, the worker,
// the command, its first key and how often that worker sent it, so they too
// repeat as far as the interleaving of the run allows.
//
// The run (chkSchedule) gives each schedule its own key prefix, queues,
// simulator and workers. Each worker has its own Redis client with a fault
// hook (asynq runs on the same client, so its own commands fail too) and
// its own TCP proxy in front of the simulator. A crash makes every command
// of the worker's client fail and closes its proxy; the tasks it held are
// then recovered through asynq's lease-expiry path: their lease is moved 61
// seconds into the past and a new worker starts (asynq's recoverer runs at
// server start). The same recovery runs, once the faults stop, for tasks
// left active by a lost acknowledgement.
//
// The broken variants ("fenceoff", "nocommit") fake the replies of the
// fence's scripts in the same hook, recognised by their SHA, so the
// production code carries no switch for them.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/enqueuecli"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// Broken variants of the checker's runs.
const (
	chkVariantNone     = ""
	chkVariantFenceOff = "fenceoff" // the fence's begin always answers "go" without running
	chkVariantNoCommit = "nocommit" // the fence's commit answers success without running
)

// chkJob is one update of the workload.
type chkJob struct {
	idx     int
	src     string // "api" (tasks.Producer), "plain" (asynq, no _meta), "cli" (a batch file), "fix" (an exported dead letter, fixed and queued again)
	binding int    // sample binding index
	op      string
	value   string
	wave    int
	idem    string              // IdempotencyKey, api jobs only
	faults  []dyplsim.FaultRule // the job's own call faults, in call order
	fixOf   string              // for "fix": the task id of the dead job it replaces
}

func (j *chkJob) update() tasks.Update {
	b := dyplsim.SeedBinding(j.binding)
	u := tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: j.op, IdempotencyKey: j.idem}
	*tasks.FieldValue(&u, chkParam[j.op]) = j.value
	return u
}

// chkParam names the parameter each OperateType of the workload sets.
var chkParam = map[string]string{"updateNoA": "PhoneNoA", "updateNoB": "PhoneNoB", "updateOutId": "OutId"}

// chkPlan is everything a schedule does, drawn from its seed.
type chkPlan struct {
	seed       uint64
	variant    string
	calm       bool // no Redis faults, no crash, only API faults that never hide an apply
	bindings   []int
	ops        []string
	jobs       []*chkJob
	waves      int
	waveEvery  time.Duration
	faultsFor  time.Duration // faults stop this long after the start
	workers    int
	conc       []int
	apiTimeout time.Duration
	redisFail  []float64 // per worker: fail before sending
	redisLost  []float64 // per worker: executed, reply lost
	redisSlow  []float64 // per worker: time out (executed or not)
	crashAt    time.Duration
	crashW     int
	requeueAt  []time.Duration
	exportAt   time.Duration   // 0: none
	uiArchive  []time.Duration // an operator archives fresh tasks in the web UI
	uiRun      []time.Duration // an operator runs archived tasks again in the web UI
	sameValue  bool
	simQPS     float64
	noise      float64 // rate of untargeted isp.SYSTEM_ERROR answers
	queryFault []dyplsim.FaultRule
	secret     string
}

func (p *chkPlan) String() string {
	src := map[string]int{}
	for _, j := range p.jobs {
		src[j.src]++
	}
	crash := "none"
	if p.crashAt > 0 {
		crash = fmt.Sprintf("w%d@%s", p.crashW, p.crashAt)
	}
	return fmt.Sprintf("seed %d%s: %d jobs %v over bindings %v %v, %d workers, api timeout %s, redis fail %v lost %v slow %v, crash %s, requeues %v, export %s, ui archive %v run %v, sameValueConflicts %v, qps %v, noise %v",
		p.seed, map[bool]string{true: " (calm)"}[p.calm], len(p.jobs), src, p.bindings, p.ops, p.workers, p.apiTimeout,
		p.redisFail, p.redisLost, p.redisSlow, crash, p.requeueAt, p.exportAt, p.uiArchive, p.uiRun, p.sameValue, p.simQPS, p.noise)
}

// newChkPlan draws a schedule from seed.
func newChkPlan(seed uint64, variant string, calm bool) *chkPlan {
	r := rand.New(rand.NewPCG(seed, 0xc4ec))
	p := &chkPlan{seed: seed, variant: variant, calm: calm, secret: fmt.Sprintf("chkSecret%08x", uint32(seed*2654435761))}
	nb := 2 + r.IntN(3)
	for _, i := range r.Perm(6)[:nb] {
		p.bindings = append(p.bindings, i+1)
	}
	all := []string{"updateNoA", "updateNoB", "updateOutId"}
	for _, i := range r.Perm(3)[:1+r.IntN(3)] {
		p.ops = append(p.ops, all[i])
	}
	p.waves = 3 + r.IntN(4)
	p.waveEvery = time.Duration(100+r.IntN(200)) * time.Millisecond
	p.faultsFor = time.Duration(p.waves)*p.waveEvery + time.Duration(200+r.IntN(800))*time.Millisecond
	p.workers = 2 + r.IntN(2)
	for range p.workers {
		p.conc = append(p.conc, 3+r.IntN(6))
	}
	p.apiTimeout = time.Duration(500+r.IntN(400)) * time.Millisecond
	rates := []float64{0, 0.002, 0.01, 0.03}
	for range p.workers {
		if calm {
			p.redisFail, p.redisLost, p.redisSlow = append(p.redisFail, 0), append(p.redisLost, 0), append(p.redisSlow, 0)
			continue
		}
		p.redisFail = append(p.redisFail, rates[r.IntN(len(rates))])
		p.redisLost = append(p.redisLost, rates[r.IntN(len(rates))])
		p.redisSlow = append(p.redisSlow, rates[r.IntN(len(rates)-1)])
	}
	if !calm && r.Float64() < 0.4 {
		p.crashW = r.IntN(p.workers)
		p.crashAt = time.Duration(150+r.IntN(int(p.faultsFor/time.Millisecond))) * time.Millisecond
	}
	for range r.IntN(3) {
		p.requeueAt = append(p.requeueAt, time.Duration(r.IntN(int(p.faultsFor/time.Millisecond)+300))*time.Millisecond)
	}
	if r.Float64() < 0.3 {
		p.exportAt = time.Duration(300+r.IntN(int(p.faultsFor/time.Millisecond))) * time.Millisecond
	}
	p.sameValue = r.Float64() < 0.5
	if r.Float64() < 0.2 {
		p.simQPS = float64(100 + r.IntN(200))
	}
	if !calm && r.Float64() < 0.3 {
		p.noise = 0.02 + 0.05*r.Float64()
	}

	// The CLI jobs go in one or two batch files: the enqueue command runs
	// one at a time in the process.
	cliWaves := map[int]bool{r.IntN(p.waves): true, r.IntN(p.waves): true}
	n := 100 + r.IntN(150)
	nFault := 0.15 + 0.35*r.Float64()
	for i := range n {
		j := &chkJob{idx: i + 1, binding: p.bindings[r.IntN(len(p.bindings))], op: p.ops[r.IntN(len(p.ops))], wave: r.IntN(p.waves)}
		switch x := r.Float64(); {
		case x < 0.55:
			j.src = "api"
			if r.Float64() < 0.15 {
				j.idem = fmt.Sprintf("chk-%d-%d", seed, j.idx)
			}
		case x < 0.75:
			j.src = "plain"
		default:
			j.src = "cli"
			if !cliWaves[j.wave] {
				j.src = "api"
			}
		}
		j.value = chkValue(j.op, j.idx)
		if r.Float64() < nFault {
			for k := range 1 + r.IntN(3) {
				j.faults = append(j.faults, p.callFault(r, j, k))
			}
		}
		p.jobs = append(p.jobs, j)
	}
	for _, b := range p.bindings {
		if r.Float64() < 0.5 {
			f := dyplsim.FaultRule{Action: "QuerySubscriptionDetail", SubsId: dyplsim.SeedBinding(b).SubsId, After: r.IntN(3), Count: 1 + r.IntN(2)}
			switch r.IntN(3) {
			case 0:
				f.Kind, f.Code = dyplsim.FaultCode, "isp.SYSTEM_ERROR"
			case 1:
				f.Kind, f.Code = dyplsim.FaultGateway, "Throttling.User"
			default:
				f.Kind, f.Status = dyplsim.FaultHTTP, 502
			}
			p.queryFault = append(p.queryFault, f)
		}
	}
	// Drawn last, so the draws above stay those of earlier seeds.
	if !calm {
		for range r.IntN(3) {
			p.uiArchive = append(p.uiArchive, time.Duration(r.IntN(int(p.faultsFor/time.Millisecond)))*time.Millisecond)
		}
		for range r.IntN(3) {
			p.uiRun = append(p.uiRun, time.Duration(200+r.IntN(int(p.faultsFor/time.Millisecond)+300))*time.Millisecond)
		}
	}
	return p
}

// chkValue is the unique value job idx sets: no two jobs of a schedule set
// the same value, so a binding's value names the job that set it.
func chkValue(op string, idx int) string {
	switch op {
	case "updateNoA":
		return fmt.Sprintf("1360%07d", idx)
	case "updateNoB":
		return fmt.Sprintf("1350%07d", idx)
	}
	return fmt.Sprintf("out-%d", idx)
}

// callFault draws the fault of call k of job j.
func (p *chkPlan) callFault(r *rand.Rand, j *chkJob, k int) dyplsim.FaultRule {
	f := dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: dyplsim.SeedBinding(j.binding).SubsId, OperateType: j.op,
		Params: map[string]string{chkParam[j.op]: j.value}, After: k, Count: 1}
	type kind struct {
		w    float64
		calm bool
		set  func()
	}
	kinds := []kind{
		{3, true, func() { f.Kind, f.Code = dyplsim.FaultCode, "isp.SYSTEM_ERROR" }},
		{2, true, func() { f.Kind, f.Code = dyplsim.FaultGateway, "Throttling.User" }},
		{1, true, func() { f.Kind, f.Code = dyplsim.FaultCode, "isv.FLOW_LIMIT" }},
		{1, true, func() { f.Kind, f.Code = dyplsim.FaultGateway, "ServiceUnavailable" }},
		{1, true, func() { f.Kind, f.Status = dyplsim.FaultHTTP, 502 }},
		{1, true, func() { f.Kind = dyplsim.FaultDrop }},
		{1, true, func() { f.Kind, f.Delay = dyplsim.FaultLatency, p.apiTimeout/3 }},
		{2, false, func() { f.Kind = dyplsim.FaultDropAfter }},
		{1, false, func() { f.Kind, f.Status, f.Apply = dyplsim.FaultHTTP, 500, true }},
		{1, false, func() { f.Kind, f.Apply = dyplsim.FaultEmpty, true }},
		{1, false, func() { f.Kind, f.Code, f.Apply = dyplsim.FaultCode, "isp.SYSTEM_ERROR", true }},
		{1, false, func() { f.Kind, f.Delay = dyplsim.FaultHang, 5*p.apiTimeout }},
		{1, false, func() { f.Kind, f.Delay = dyplsim.FaultLatency, p.apiTimeout+p.apiTimeout/2 }},
		{0.5, false, func() { f.Kind, f.Code = dyplsim.FaultCode, "isv.BIND_CONFLICT" }},
		{0.3, false, func() { f.Kind, f.Code = dyplsim.FaultCode, "isv.SUBS_NOT_EXIST" }},
		{0.3, false, func() { f.Kind, f.Code = dyplsim.FaultGateway, "SignatureDoesNotMatch" }},
		{0.2, false, func() { f.Kind, f.Code = dyplsim.FaultCode, "isv.ACCOUNT_ABNORMAL" }},
	}
	var total float64
	for _, k := range kinds {
		if !p.calm || k.calm {
			total += k.w
		}
	}
	x := r.Float64() * total
	for _, k := range kinds {
		if p.calm && !k.calm {
			continue
		}
		if x < k.w {
			k.set()
			return f
		}
		x -= k.w
	}
	kinds[0].set()
	return f
}

// chkViolation is one broken guarantee.
type chkViolation struct {
	Kind   string
	Detail string
}

// chkReport is what one schedule found.
type chkReport struct {
	plan       *chkPlan
	violations []chkViolation
	outcomes   map[string]int
	acts       map[string]int // operator actions that took effect, by kind
	took       time.Duration
	logs       string
	err        error // the schedule could not run (set-up), not a violation
}

// chkEnv is what every schedule shares: the Redis URL and a dead-simple
// client for set-up, enqueueing and reading the outcome (it never fails on
// purpose).
type chkEnv struct {
	url string
	opt *redis.Options
	dir string
}

func newChkEnv(t testing.TB) *chkEnv {
	url := redistest.URL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return &chkEnv{url: url, opt: opt, dir: t.TempDir()}
}

// chkBound is how long after the faults stop every job must have ended
// (DYPLSQ_CHECK_BOUND, default 60s: a loaded machine under -race makes
// every call slow).
var chkBound = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("DYPLSQ_CHECK_BOUND")); err == nil && d > 0 {
		return d
	}
	return 60 * time.Second
}()

// chkCLIMu serialises in-process runs of the enqueue command: it sets
// go-redis's global logger.
var chkCLIMu sync.Mutex

// chkSchedule is one run of a plan.
type chkSchedule struct {
	env   *chkEnv
	plan  *chkPlan
	ns    string
	live  string
	bulk  string
	rdb   *redis.Client // the checker's own client: no faults
	sim   *dyplsim.Sim
	simSr interface{ Close() error }
	addr  string
	logs  *safebuf.Buffer
	cli   *safebuf.Buffer // the enqueue command's output
	start time.Time
	dir   string

	applyMu sync.Mutex
	applied []dyplsim.Applied

	faultsOn atomic.Bool

	mu        sync.Mutex
	workers   []*chkWorker
	jobs      []*chkJob         // plan jobs, and fixes made during the run
	taskOf    map[string]string // value → task id (api and plain jobs)
	dupOf     map[string]bool   // value → the producer found its IdempotencyKey taken
	purged    map[string]bool   // task ids purged after their export
	fixed     map[string]string // exported task id → value of its fix
	fixBatch  string
	fixLine   map[*chkJob]int // fix job → its line in the fixed file
	enqErrors []string
	nextIdx   int
	recovered int
	acts      map[string]int // operator actions that took effect, by kind
}

// chkWorker is one worker with its own Redis client, hook and proxy.
type chkWorker struct {
	n     int
	w     *Worker
	rdb   *redis.Client
	hook  *chkHook
	proxy *chkProxy
	api   *dypls.Client
}

func (s *chkSchedule) logf(format string, args ...any) {
	fmt.Fprintf(s.logs, `{"level":"info","component":"checker","t":"%s","message":%q}`+"\n", time.Since(s.start).Round(time.Millisecond), fmt.Sprintf(format, args...))
}

var chkNewClientMu sync.Mutex

// elapsed stamps every log line with the time since the schedule started.
func (s *chkSchedule) elapsed() zerolog.Hook {
	return zerolog.HookFunc(func(e *zerolog.Event, _ zerolog.Level, _ string) {
		e.Str("t", time.Since(s.start).Round(time.Millisecond).String())
	})
}

// runChkSchedule runs one plan to its end and checks it.
func runChkSchedule(env *chkEnv, plan *chkPlan) (rep *chkReport) {
	rep = &chkReport{plan: plan, outcomes: map[string]int{}}
	var nsb [4]byte
	binary.LittleEndian.PutUint32(nsb[:], rand.Uint32())
	ns := fmt.Sprintf("chk%x", nsb)
	s := &chkSchedule{env: env, plan: plan, ns: ns, live: ns + "-live", bulk: ns + "-bulk", logs: &safebuf.Buffer{}, cli: &safebuf.Buffer{},
		start: time.Now(), taskOf: map[string]string{}, dupOf: map[string]bool{}, purged: map[string]bool{}, fixed: map[string]string{}, fixLine: map[*chkJob]int{}, acts: map[string]int{},
		jobs: append([]*chkJob(nil), plan.jobs...), nextIdx: len(plan.jobs) + 1}
	s.dir = filepath.Join(env.dir, ns)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		rep.err = err
		return rep
	}
	opt := *env.opt
	opt.PoolSize = 16
	s.rdb = redis.NewClient(&opt)
	defer s.rdb.Close()
	defer s.cleanup()

	faults := append([]dyplsim.FaultRule(nil), plan.queryFault...)
	for _, j := range plan.jobs {
		faults = append(faults, j.faults...)
	}
	if plan.noise > 0 {
		faults = append(faults, dyplsim.FaultRule{Action: "UpdateSubscription", Kind: dyplsim.FaultCode, Code: "isp.SYSTEM_ERROR", Rate: plan.noise})
	}
	simCfg := dyplsim.Config{Seed: 6, RandSeed: int64(plan.seed) | 1, AccessKeys: map[string]string{dyplsim.DefaultAccessKeyID: plan.secret},
		SameValueConflicts: plan.sameValue, QPS: plan.simQPS, Burst: 5, Faults: faults,
		OnApply: func(a dyplsim.Applied) {
			s.applyMu.Lock()
			s.applied = append(s.applied, a)
			s.applyMu.Unlock()
		}}
	sim, srv, addr, err := dyplsim.Start(simCfg, "127.0.0.1:0")
	if err != nil {
		rep.err = err
		return rep
	}
	s.sim, s.simSr, s.addr = sim, srv, addr
	defer func() { sim.Close(); srv.Close() }()
	s.faultsOn.Store(true)

	for i := range plan.workers {
		if err := s.startWorker(i); err != nil {
			rep.err = err
			return rep
		}
	}

	// The timeline: waves of jobs, the crash, requeues, the export.
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := range plan.waves {
		wg.Go(func() {
			s.sleepUntil(time.Duration(w) * plan.waveEvery)
			s.enqueueWave(ctx, w)
		})
	}
	if plan.crashAt > 0 {
		wg.Go(func() {
			s.sleepUntil(plan.crashAt)
			s.crash(plan.crashW)
		})
	}
	for _, at := range plan.requeueAt {
		wg.Go(func() {
			s.sleepUntil(at)
			s.requeue(ctx)
		})
	}
	if plan.exportAt > 0 {
		wg.Go(func() {
			s.sleepUntil(plan.exportAt)
			s.exportFix(ctx)
		})
	}
	for _, at := range plan.uiArchive {
		wg.Go(func() {
			s.sleepUntil(at)
			s.uiArchiveFresh(ctx)
		})
	}
	for _, at := range plan.uiRun {
		wg.Go(func() {
			s.sleepUntil(at)
			s.uiRunArchived(ctx)
		})
	}
	s.sleepUntil(plan.faultsFor)
	s.stopFaults()
	wg.Wait()

	// Every job must end within the bound; tasks left active by a crash
	// or a lost acknowledgement are recovered the way asynq would, sooner.
	ended := s.waitEnded(ctx, chkBound)
	if !ended {
		rep.violations = append(rep.violations, s.notEnded(ctx)...)
	}
	s.waitDeadLetters(ctx, 3*time.Second)
	s.shutdown()
	for _, v := range s.check(ctx, rep.outcomes) {
		// With jobs still open, the final state is not final: only
		// what holds at any time is checked.
		if ended || v.Kind == "overlap" || v.Kind == "leak" || v.Kind == "applied-below" || v.Kind == "applied-no-requestid" {
			rep.violations = append(rep.violations, v)
		}
	}
	s.mu.Lock()
	rep.acts = maps.Clone(s.acts)
	s.mu.Unlock()
	rep.took = time.Since(s.start)
	rep.logs = s.logs.String() + s.cli.String()
	return rep
}

func (s *chkSchedule) sleepUntil(d time.Duration) {
	if w := time.Until(s.start.Add(d)); w > 0 {
		time.Sleep(w)
	}
}

func (s *chkSchedule) startWorker(i int) error {
	p := s.plan
	proxy, err := newChkProxy(s.addr)
	if err != nil {
		return err
	}
	chkNewClientMu.Lock()
	api, err := dypls.New(dypls.Config{Endpoint: "http://" + proxy.addr(), AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: p.secret, Timeout: p.apiTimeout})
	chkNewClientMu.Unlock()
	if err != nil {
		proxy.Close()
		return err
	}
	opt := *s.env.opt
	opt.PoolSize = 16
	rdb := redis.NewClient(&opt)
	idx := i % p.workers
	h := &chkHook{s: s, n: i, fail: p.redisFail[idx], lost: p.redisLost[idx], slow: p.redisSlow[idx],
		counts: map[string]uint64{}, running: map[string]bool{}}
	rdb.AddHook(h)
	conc := p.conc[idx] + i/p.workers
	cfg := Config{
		Queues:      map[string]int{s.live: 3, s.bulk: 1},
		Concurrency: conc, MaxAttempts: 10,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 80 * time.Millisecond, ThrottleDelay: 30 * time.Millisecond,
		HaltProbeMin: 50 * time.Millisecond, HaltProbeMax: 200 * time.Millisecond, HaltWait: 100 * time.Millisecond,
		SweepInterval: 200 * time.Millisecond, BusyWait: 20 * time.Millisecond, BusyDelay: 30 * time.Millisecond,
		LimitWait: 50 * time.Millisecond, TaskCheckInterval: 25 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
		KeyPrefix: s.ns, WorkerID: fmt.Sprintf("%s-w%d", s.ns, i),
		Logger: zerolog.New(s.logs).Level(zerolog.DebugLevel).With().Int("w", i).Logger().Hook(s.elapsed()),
	}
	if p.simQPS > 0 {
		cfg.QPS = p.simQPS * 2
	}
	w, err := New(cfg, rdb, api)
	if err != nil {
		rdb.Close()
		api.Close()
		proxy.Close()
		return err
	}
	cw := &chkWorker{n: i, w: w, rdb: rdb, hook: h, proxy: proxy, api: api}
	s.mu.Lock()
	s.workers = append(s.workers, cw)
	s.mu.Unlock()
	if err := w.Start(); err != nil {
		return err
	}
	s.logf("worker %d started (concurrency %d)", i, conc)
	return nil
}

// enqueueWave queues the jobs of wave w: producer and plain jobs one by
// one, the CLI jobs as one batch file.
func (s *chkSchedule) enqueueWave(ctx context.Context, w int) {
	prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(s.rdb), Redis: s.rdb, Queue: s.live, KeyPrefix: s.ns}
	client := asynq.NewClientFromRedisClient(s.rdb)
	var cli []*chkJob
	for _, j := range s.plan.jobs {
		if j.wave != w {
			continue
		}
		switch j.src {
		case "api":
			res, err := prod.Enqueue(ctx, j.update())
			s.mu.Lock()
			if err != nil {
				s.enqErrors = append(s.enqErrors, fmt.Sprintf("job %d: %v", j.idx, err))
			} else if res.Duplicate {
				s.dupOf[j.value] = true
			} else {
				s.taskOf[j.value] = res.TaskID
			}
			s.mu.Unlock()
		case "plain":
			u := j.update()
			b, _ := json.Marshal(u)
			info, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeUpdateSubscription, b), asynq.Queue(s.live),
				asynq.MaxRetry(tasks.DefaultMaxRetry), asynq.Retention(tasks.DefaultRetention), asynq.Timeout(tasks.DefaultTimeout))
			s.mu.Lock()
			if err != nil {
				s.enqErrors = append(s.enqErrors, fmt.Sprintf("job %d: %v", j.idx, err))
			} else {
				s.taskOf[j.value] = info.ID
			}
			s.mu.Unlock()
		case "cli":
			cli = append(cli, j)
		}
	}
	if len(cli) > 0 {
		var b bytes.Buffer
		cw := csv.NewWriter(&b)
		_ = cw.Write([]string{"PoolKey", "SubsId", "PhoneNoX", "OperateType", "PhoneNoA", "PhoneNoB", "OutId"})
		for _, j := range cli {
			u := j.update()
			_ = cw.Write([]string{u.PoolKey, u.SubsId, u.PhoneNoX, u.OperateType, u.PhoneNoA, u.PhoneNoB, u.OutId})
		}
		cw.Flush()
		path := filepath.Join(s.dir, fmt.Sprintf("wave%d.csv", w))
		if err := os.WriteFile(path, b.Bytes(), 0o600); err == nil {
			if code := s.runCLI(ctx, "--queue", s.bulk, "--new-queue", path); code != 0 {
				s.mu.Lock()
				s.enqErrors = append(s.enqErrors, fmt.Sprintf("enqueue %s: exit %d", path, code))
				s.mu.Unlock()
			}
		}
	}
	s.logf("wave %d queued", w)
}

func (s *chkSchedule) runCLI(ctx context.Context, args ...string) int {
	getenv := func(k string) string {
		switch k {
		case "REDIS_URL":
			return s.env.url
		case "DYPLSQ_KEY_PREFIX":
			return s.ns
		case "ENQUEUE_KEEP_FINISHED":
			return "1h" // the checker reads every job's end from asynq
		}
		return ""
	}
	chkCLIMu.Lock()
	defer chkCLIMu.Unlock()
	fmt.Fprintf(s.cli, "$ enqueue %s\n", strings.Join(args, " "))
	return enqueuecli.Run(ctx, args, getenv, strings.NewReader(""), s.cli, s.cli)
}

// crash stops worker n abruptly: its Redis commands fail from now on and
// its API traffic is cut. Its tasks are recovered through asynq's lease
// expiry by a new worker.
func (s *chkSchedule) crash(n int) {
	s.mu.Lock()
	w := s.workers[n]
	s.mu.Unlock()
	w.hook.dead.Store(true)
	w.proxy.Close()
	s.logf("worker %d crashed", n)
	time.Sleep(50 * time.Millisecond)
	s.recoverOrphans(context.Background(), true)
}

// liveRunning returns the tasks that a live worker is running.
func (s *chkSchedule) liveRunning() map[string]bool {
	out := map[string]bool{}
	s.mu.Lock()
	ws := append([]*chkWorker(nil), s.workers...)
	s.mu.Unlock()
	for _, w := range ws {
		if w.hook.dead.Load() {
			continue
		}
		w.hook.mu.Lock()
		for id := range w.hook.running {
			out[id] = true
		}
		w.hook.mu.Unlock()
	}
	return out
}

// orphans returns the tasks holding a lease that no live worker runs.
func (s *chkSchedule) orphans(ctx context.Context) map[string][]string {
	running := s.liveRunning()
	out := map[string][]string{}
	for _, q := range []string{s.live, s.bulk} {
		ids, _ := s.rdb.ZRange(ctx, "asynq:{"+q+"}:lease", 0, -1).Result()
		for _, id := range ids {
			if !running[id] {
				out[q] = append(out[q], id)
			}
		}
	}
	return out
}

// recoverOrphans moves the lease of every orphaned task 61 s into the past
// and starts a new worker, whose recoverer hands them back to the queue as
// asynq does once a lease has expired.
func (s *chkSchedule) recoverOrphans(ctx context.Context, always bool) bool {
	first := s.orphans(ctx)
	if len(first) == 0 && !always {
		return false
	}
	// A task seen orphaned twice, 100 ms apart, is not one a live worker
	// was just picking up.
	time.Sleep(100 * time.Millisecond)
	second := s.orphans(ctx)
	past := float64(time.Now().Add(-61 * time.Second).Unix())
	n := 0
	for q, ids := range second {
		again := map[string]bool{}
		for _, id := range first[q] {
			again[id] = true
		}
		for _, id := range ids {
			if again[id] {
				s.rdb.ZAddXX(ctx, "asynq:{"+q+"}:lease", redis.Z{Score: past, Member: id})
				n++
			}
		}
	}
	if n == 0 && !always {
		return false
	}
	s.mu.Lock()
	next := len(s.workers)
	s.recovered += n
	s.mu.Unlock()
	if next >= s.plan.workers+6 {
		return false
	}
	s.logf("%d orphaned tasks: leases expired, starting worker %d", n, next)
	if err := s.startWorker(next); err != nil {
		s.logf("worker %d did not start: %v", next, err)
	}
	return true
}

// requeue sends every dead letter of the schedule back, as `enqueue dlq
// requeue` does.
func (s *chkSchedule) requeue(ctx context.Context) {
	rq := &deadletter.Requeuer{Store: &deadletter.Store{Redis: s.rdb, Prefix: s.ns},
		Inspector: asynq.NewInspectorFromRedisClient(s.rdb), Client: asynq.NewClientFromRedisClient(s.rdb)}
	outs, err := rq.Requeue(ctx, deadletter.Filter{}, false)
	n := 0
	for _, o := range outs {
		if o.Code == deadletter.OutcomeRequeued {
			n++
		}
	}
	s.act("requeued", n)
	s.logf("requeue: %d of %d dead letters requeued (err %v)", n, len(outs), err)
}

// uiArchiveFresh archives, as an operator does with the web UI's Archive,
// up to two waiting tasks that no attempt has touched (pending or scheduled,
// never failed, never requeued): archiving a job whose call may have applied
// is the operator's call, beyond what the checker can judge. The sweep must
// write their records and end their batch rows.
func (s *chkSchedule) uiArchiveFresh(ctx context.Context) {
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	var done []string
	for _, q := range []string{s.bulk, s.live} {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListPendingTasks, insp.ListScheduledTasks} {
			infos, _ := list(q, asynq.PageSize(20))
			for _, info := range infos {
				if len(done) == 2 {
					break
				}
				if info.Retried > 0 || info.LastErr != "" {
					continue
				}
				if u, err := tasks.Decode(info.Payload); err != nil || (u.Meta != nil && (u.Meta.Requeues > 0 || u.Meta.Ambiguous)) {
					continue
				}
				if err := insp.ArchiveTask(q, info.ID); err == nil {
					done = append(done, info.ID)
				}
			}
		}
	}
	s.act("ui-archived", len(done))
	s.logf("ui: archived %v", done)
}

// uiRunArchived runs again, as an operator does with the web UI's Run, up to
// two archived tasks: asynq keeps their retry count, so their jobs cannot
// tell that a dead-letter record stands for them; the sweep must delete the
// record of one that completes.
func (s *chkSchedule) uiRunArchived(ctx context.Context) {
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	var done []string
	for _, q := range []string{s.live, s.bulk} {
		infos, _ := insp.ListArchivedTasks(q, asynq.PageSize(20))
		for _, info := range infos {
			if len(done) == 2 {
				break
			}
			if err := insp.RunTask(q, info.ID); err == nil {
				done = append(done, info.ID)
			}
		}
	}
	s.act("ui-ran", len(done))
	s.logf("ui: ran %v again", done)
}

// act counts n operator actions of kind that took effect.
func (s *chkSchedule) act(kind string, n int) {
	s.mu.Lock()
	s.acts[kind] += n
	s.mu.Unlock()
}

// exportFix exports the dead letters of the live queue with the enqueue
// command, fixes every row (a new value), queues the file again and purges
// the exported records, as the command's advice says.
func (s *chkSchedule) exportFix(ctx context.Context) {
	at := time.Now()
	path := filepath.Join(s.dir, "dead.csv")
	if code := s.runCLI(ctx, "dlq", "export", "--queue", s.live, "--force", "--out", path); code != 0 {
		s.logf("export: exit %d", code)
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) < 2 {
		return
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	byValue := map[string]*chkJob{}
	s.mu.Lock()
	for _, j := range s.jobs {
		byValue[j.value] = j
	}
	var fixes []*chkJob
	for i, row := range rows[1:] {
		op := row[col["OperateType"]]
		param, ok := chkParam[op]
		if !ok {
			continue
		}
		old := byValue[row[col[param]]]
		if old == nil {
			continue
		}
		j := &chkJob{idx: s.nextIdx, src: "fix", binding: old.binding, op: op, fixOf: row[col["_task_id"]]}
		s.nextIdx++
		j.value = chkValue(op, j.idx)
		row[col[param]] = j.value
		s.jobs = append(s.jobs, j)
		s.fixed[j.fixOf] = j.value
		s.fixLine[j] = i + 2
		fixes = append(fixes, j)
	}
	s.mu.Unlock()
	if len(fixes) == 0 {
		return
	}
	var out bytes.Buffer
	cw := csv.NewWriter(&out)
	_ = cw.WriteAll(rows)
	fixed := filepath.Join(s.dir, "dead-fixed.csv")
	if err := os.WriteFile(fixed, out.Bytes(), 0o600); err != nil {
		return
	}
	code := s.runCLI(ctx, "--queue", s.bulk, "--new-queue", fixed)
	id, _ := batch.IDOf("csv", bytes.NewReader(out.Bytes()))
	s.mu.Lock()
	s.fixBatch = id
	s.mu.Unlock()
	// The advice after an export: purge what was exported (only records
	// that died well before it, so none is purged unexported).
	rq := &deadletter.Requeuer{Store: &deadletter.Store{Redis: s.rdb, Prefix: s.ns},
		Inspector: asynq.NewInspectorFromRedisClient(s.rdb), Client: asynq.NewClientFromRedisClient(s.rdb)}
	outs, _ := rq.Purge(ctx, deadletter.Filter{Queue: s.live, Until: at.Add(-time.Second)}, false)
	s.mu.Lock()
	for _, o := range outs {
		if o.Code == deadletter.OutcomePurged {
			s.purged[o.TaskID] = true
		}
	}
	s.mu.Unlock()
	s.logf("export: %d rows fixed and queued (exit %d, batch %s), %d purged", len(fixes), code, id, len(outs))
}

func (s *chkSchedule) stopFaults() {
	s.faultsOn.Store(false)
	s.sim.SetFaults(nil)
	s.sim.SetQPS(0, 0)
	s.logf("faults stop")
}

// waitEnded waits until no task of the schedule is pending, scheduled,
// retrying or active, recovering orphaned tasks on the way.
func (s *chkSchedule) waitEnded(ctx context.Context, bound time.Duration) bool {
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	deadline := time.Now().Add(bound)
	lastRecover := time.Now()
	for time.Now().Before(deadline) {
		open := 0
		for _, q := range []string{s.live, s.bulk} {
			info, err := insp.GetQueueInfo(q)
			if err != nil {
				continue
			}
			open += info.Pending + info.Active + info.Scheduled + info.Retry + info.Aggregating
		}
		if open == 0 {
			s.logf("every job ended")
			return true
		}
		if time.Since(lastRecover) > 500*time.Millisecond {
			s.recoverOrphans(ctx, false)
			lastRecover = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (s *chkSchedule) notEnded(ctx context.Context) []chkViolation {
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	var out []chkViolation
	for _, q := range []string{s.live, s.bulk} {
		var infos []*asynq.TaskInfo
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			insp.ListPendingTasks, insp.ListActiveTasks, insp.ListScheduledTasks, insp.ListRetryTasks} {
			l, _ := list(q, asynq.PageSize(1000))
			infos = append(infos, l...)
		}
		for _, info := range infos {
			out = append(out, chkViolation{"not-ended", fmt.Sprintf("task %s (%s) is %s after the bound: last error %q, retried %d",
				info.ID, chkDescribe(info.Payload), info.State, mask.Text(info.LastErr), info.Retried)})
		}
	}
	return out
}

// waitDeadLetters gives the sweep time to write the records of tasks
// archived without one.
func (s *chkSchedule) waitDeadLetters(ctx context.Context, bound time.Duration) {
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	store := &deadletter.Store{Redis: s.rdb, Prefix: s.ns}
	bs := &batch.Store{Redis: s.rdb, Prefix: s.ns}
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		// What the sweep settles within its interval: every archived task
		// has a record (but one archived after its job ended) and an ended
		// batch row, no record stands for a completed task, and no
		// adoption is left.
		missing := 0
		var rows []batch.RowRef
		for _, q := range []string{s.live, s.bulk} {
			l, _ := insp.ListArchivedTasks(q, asynq.PageSize(1000))
			for _, info := range l {
				// A task archived after its job ended needs no record,
				// and must lose the one it had.
				_, ended := deadletter.EndedBeforeArchive(info)
				if n, _ := s.rdb.Exists(ctx, store.RecordKey(info.ID)).Result(); (n == 0) != ended {
					missing++
				}
				if u, err := tasks.Decode(info.Payload); err == nil && u.Meta != nil && u.Meta.Batch != "" {
					rows = append(rows, batch.RowRef{Batch: u.Meta.Batch, Line: u.Meta.Line})
				}
			}
			l, _ = insp.ListCompletedTasks(q, asynq.PageSize(1000))
			for _, info := range l {
				if n, _ := s.rdb.Exists(ctx, store.RecordKey(info.ID)).Result(); n != 0 {
					missing++
				}
			}
		}
		open, _ := bs.Open(ctx, rows)
		for _, o := range open {
			if o {
				missing++
			}
		}
		if n, _ := s.rdb.HLen(ctx, store.AdoptKey()).Result(); n > 0 {
			missing++
		}
		if missing == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *chkSchedule) shutdown() {
	s.mu.Lock()
	ws := append([]*chkWorker(nil), s.workers...)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			w.w.Shutdown()
			w.proxy.Close()
		})
	}
	wg.Wait()
	for _, w := range ws {
		w.rdb.Close()
		w.api.Close()
	}
}

func (s *chkSchedule) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, pat := range []string{s.ns + ":*", "asynq:{" + s.live + "}*", "asynq:{" + s.bulk + "}*"} {
		iter := s.rdb.Scan(ctx, 0, pat, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for len(keys) > 0 {
			n := min(len(keys), 500)
			s.rdb.Del(ctx, keys[:n]...)
			keys = keys[n:]
		}
	}
	s.rdb.SRem(ctx, "asynq:queues", s.live, s.bulk)
	os.RemoveAll(s.dir)
}

// chkDescribe names a job by its payload, phone numbers masked.
func chkDescribe(payload []byte) string {
	u, err := tasks.Decode(payload)
	if err != nil {
		return "unreadable payload"
	}
	v := ""
	if p, ok := chkParam[u.OperateType]; ok {
		v = mask.Number(*tasks.FieldValue(&u, p))
		if u.OperateType == "updateOutId" {
			v = u.OutId
		}
	}
	ver := int64(0)
	if u.Meta != nil {
		ver = u.Meta.Version
	}
	return fmt.Sprintf("%s %s=%s v%d", u.SubsId, u.OperateType, v, ver)
}

// chkTask is a task's final state.
type chkTask struct {
	id, queue string
	job       *chkJob
	state     string // applied, superseded, dead
	version   int64
	result    Result
	info      *asynq.TaskInfo
}

func (t *chkTask) String() string {
	return fmt.Sprintf("task %s (%s job %d, %s, v%d)", t.id, t.job.src, t.job.idx, t.state, t.version)
}

// check verifies the guarantees on the schedule's final state.
func (s *chkSchedule) check(ctx context.Context, outcomes map[string]int) []chkViolation {
	var vs []chkViolation
	add := func(kind, format string, args ...any) {
		vs = append(vs, chkViolation{kind, fmt.Sprintf(format, args...)})
	}
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	store := &deadletter.Store{Redis: s.rdb, Prefix: s.ns}
	byValue := map[string]*chkJob{}
	for _, j := range s.jobs {
		byValue[j.value] = j
	}
	for _, e := range s.enqErrors {
		add("enqueue-failed", "%s", e)
	}

	// Every task that ended, with the job it carries.
	tasksByID := map[string]*chkTask{}
	taskOfJob := map[*chkJob]*chkTask{}
	var surfaces []string // everything shown to people, for the privacy check
	for _, q := range []string{s.live, s.bulk} {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListCompletedTasks, insp.ListArchivedTasks} {
			for page := 1; ; page++ {
				infos, err := list(q, asynq.PageSize(1000), asynq.Page(page))
				if err != nil || len(infos) == 0 {
					break
				}
				for _, info := range infos {
					t := &chkTask{id: info.ID, queue: q, info: info}
					u, err := tasks.Decode(info.Payload)
					if err != nil {
						add("unknown-task", "task %s has an unreadable payload: %v", info.ID, err)
						continue
					}
					p := chkParam[u.OperateType]
					t.job = byValue[*tasks.FieldValue(&u, p)]
					if t.job == nil {
						add("unknown-task", "task %s sets a value no job of the schedule set", info.ID)
						continue
					}
					if u.Meta != nil {
						t.version = u.Meta.Version
					}
					surfaces = append(surfaces, info.LastErr, string(info.Result))
					if _, ended := deadletter.EndedBeforeArchive(info); info.State == asynq.TaskStateArchived && !ended {
						t.state = OutcomeDead
						if r, ok, _ := store.Get(ctx, info.ID); ok && r.Version > 0 {
							t.version = r.Version
						}
					} else {
						if err := json.Unmarshal(info.Result, &t.result); err != nil {
							t.state = "completed without a result"
							add("no-result", "%s completed with result %q: nobody can tell whether it was applied", t, info.Result)
						} else {
							t.state = t.result.Outcome
						}
						if t.result.Version > 0 {
							t.version = t.result.Version
						}
						if t.state == OutcomeApplied && t.result.RequestID == "" {
							add("applied-no-requestid", "%s: result %s has no RequestId", t, info.Result)
						}
					}
					outcomes[t.state]++
					if prev := taskOfJob[t.job]; prev != nil {
						add("duplicate-task", "job %d is carried by two tasks: %s and %s", t.job.idx, prev.id, t.id)
					}
					taskOfJob[t.job] = t
					tasksByID[t.id] = t
				}
				if len(infos) < 1000 {
					break
				}
			}
		}
	}

	// Every job queued ended, or was purged after its fix was queued.
	fixRows := map[int]batch.Row{}
	if s.fixBatch != "" {
		bs := &batch.Store{Redis: s.rdb, Prefix: s.ns}
		if st, err := bs.Status(ctx, s.fixBatch); err == nil {
			rows, _ := bs.Rows(ctx, s.fixBatch, 1, st.Lines)
			for _, r := range rows {
				fixRows[r.Line] = r
			}
		}
	}
	for _, j := range s.jobs {
		if taskOfJob[j] != nil {
			continue
		}
		id := s.taskOf[j.value]
		switch {
		case j.src == "api" && s.dupOf[j.value]:
		case s.purged[id] && s.fixed[id] != "" && taskOfJob[byValue[s.fixed[id]]] != nil:
		case j.src == "fix":
			r := fixRows[s.fixLine[j]]
			add("fix-dropped", "the fixed row of dead task %s (job %d) was not queued: its batch row is %q (%s); the original dead letter %s",
				j.fixOf, j.idx, r.Outcome, r.Code, map[bool]string{true: "was purged as the export advised: the update is lost", false: "is kept"}[s.purged[j.fixOf]])
		case s.purged[id]:
			add("lost-job", "job %d (task %s) was purged after its export, and its fix never ended", j.idx, id)
		default:
			add("lost-job", "job %d (%s, %s %s) has no ended task (task id %q)", j.idx, j.src, dyplsim.SeedBinding(j.binding).SubsId, j.op, id)
		}
	}

	// Newest wins, per binding field.
	s.applyMu.Lock()
	applied := append([]dyplsim.Applied(nil), s.applied...)
	s.applyMu.Unlock()
	type fieldKey struct{ subs, op string }
	log := map[fieldKey][]dyplsim.Applied{}
	for _, a := range applied {
		k := fieldKey{a.SubsId, a.OperateType}
		log[k] = append(log[k], a)
	}
	appliedByJob := map[*chkJob]bool{}
	for _, a := range applied {
		if j := byValue[a.Value]; j != nil {
			appliedByJob[j] = true
		}
	}
	for _, b := range s.plan.bindings {
		sb := dyplsim.SeedBinding(b)
		bind, _ := s.sim.Binding(sb.SubsId)
		for _, op := range s.plan.ops {
			var best *chkTask
			for _, t := range tasksByID {
				if t.job.binding == b && t.job.op == op && t.state == OutcomeApplied && (best == nil || t.version > best.version) {
					best = t
				}
			}
			var got, initial string
			switch op {
			case "updateNoA":
				got, initial = bind.PhoneNoA, sb.PhoneNoA
			case "updateNoB":
				got, initial = bind.PhoneNoB, sb.PhoneNoB
			default:
				got, initial = bind.OutId, sb.OutId
			}
			want := initial
			if best != nil {
				want = best.job.value
			}
			holder := taskOfJob[byValue[got]]
			if got != want {
				what := "the initial value"
				if best != nil {
					what = fmt.Sprintf("the value of %s", best)
				}
				who := "no job's value"
				if holder != nil {
					who = holder.String()
				} else if j := byValue[got]; j != nil {
					who = fmt.Sprintf("the value of job %d (no ended task)", j.idx)
				}
				add("newest-lost", "%s %s holds %s, want %s", sb.SubsId, op, who, what)
			}
			if holder != nil && holder.state == OutcomeDead && appliedByJob[holder.job] {
				add("dead-but-applied", "%s is dead, but its own call applied it and %s %s holds its value (code %s)",
					holder, sb.SubsId, op, chkDeadCode(ctx, store, holder.id))
			}
			// No job's call applied below the version recorded as
			// applied: a version counts as recorded from the moment its
			// job reported applied (after the fence's commit).
			var done []*chkTask
			for _, t := range tasksByID {
				if t.job.binding == b && t.job.op == op && t.state == OutcomeApplied {
					done = append(done, t)
				}
			}
			for _, a := range log[fieldKey{sb.SubsId, op}] {
				t := taskOfJob[byValue[a.Value]]
				if t == nil || t.version == 0 {
					continue
				}
				var recBy *chkTask
				for _, d := range done {
					if d.result.At.Before(a.At) && d.version > t.version && (recBy == nil || d.version > recBy.version) {
						recBy = d
					}
				}
				if recBy != nil {
					add("applied-below", "%s %s: the call of %s applied at %s, after %s had ended applied at %s",
						sb.SubsId, op, t, a.At.Format("15:04:05.000"), recBy, recBy.result.At.Local().Format("15:04:05.000"))
				}
			}
			for _, t := range tasksByID {
				if t.job.binding == b && t.job.op == op && t.state == OutcomeSuperseded && (best == nil || t.version >= best.version) {
					add("superseded-without-newer", "%s ended superseded, but no newer version of %s %s ended applied", t, sb.SubsId, op)
				}
			}
		}
	}

	// At most one call per binding in flight.
	for subs, n := range s.sim.Stats().Overlaps {
		add("overlap", "%d UpdateSubscription calls for %s were in flight at once", n, subs)
	}

	// Batch counters equal the row states, and rows agree with their jobs.
	bs := &batch.Store{Redis: s.rdb, Prefix: s.ns}
	sts, _ := bs.List(ctx, 1000)
	for _, st := range sts {
		rows, err := bs.Rows(ctx, st.ID, 1, st.Lines)
		if err != nil {
			add("batch-unreadable", "batch %s: %v", st.ID, err)
			continue
		}
		tally := map[string]int64{}
		for _, r := range rows {
			if r.Outcome == "" {
				continue
			}
			tally[r.Outcome]++
			surfaces = append(surfaces, r.Message)
			t := tasksByID[r.TaskID]
			want := ""
			switch {
			case t != nil:
				want = t.state
			case r.TaskID != "" && s.purged[r.TaskID]:
				continue
			}
			if r.Outcome == batch.OutcomeDuplicate || r.Outcome == batch.OutcomeInvalid || r.Outcome == batch.OutcomeCancelled {
				continue
			}
			if want == "" {
				add("batch-row-state", "batch %s line %d is %s, but its task %q has not ended", st.ID, r.Line, r.Outcome, r.TaskID)
			} else if r.Outcome != want {
				add("batch-row-state", "batch %s line %d is %s, but %s", st.ID, r.Line, r.Outcome, t)
			}
		}
		for _, o := range batch.Outcomes {
			if tally[o] != st.Counts.Of(o) {
				add("batch-counters", "batch %s counts %d %s, its rows say %d", st.ID, st.Counts.Of(o), o, tally[o])
			}
		}
	}

	// Every dead job has exactly one indexed dead-letter record, and no
	// record stands for a job that is not dead.
	index, _ := s.rdb.ZRange(ctx, store.IndexKey(), 0, -1).Result()
	indexed := map[string]bool{}
	for _, id := range index {
		indexed[id] = true
	}
	recs := map[string]bool{}
	iter := s.rdb.Scan(ctx, 0, store.RecordKey("*"), 1000).Iterator()
	for iter.Next(ctx) {
		recs[strings.TrimPrefix(iter.Val(), store.RecordKey(""))] = true
	}
	for id, t := range tasksByID {
		if t.state != OutcomeDead {
			continue
		}
		switch {
		case !recs[id] && !indexed[id]:
			add("deadletter-missing", "%s has no dead-letter record", t)
		case !recs[id]:
			add("deadletter-missing", "%s is in the dead-letter index without a record", t)
		case !indexed[id]:
			add("deadletter-unindexed", "%s has a dead-letter record missing from the index: list, requeue and metrics miss it", t)
		}
	}
	for id := range recs {
		if t := tasksByID[id]; t == nil || t.state != OutcomeDead {
			add("deadletter-stale", "a dead-letter record stands for task %s, which is %s", id, chkStateOf(t))
		}
		if r, ok, _ := store.Get(ctx, id); ok {
			surfaces = append(surfaces, r.Message, r.String())
		}
	}
	for id := range indexed {
		if !recs[id] && tasksByID[id] == nil {
			add("deadletter-stale", "the dead-letter index lists task %s, which has no record and is not dead", id)
		}
	}

	// No full phone number or secret on any surface.
	secrets := map[string]string{s.plan.secret: "the AccessKeySecret"}
	for _, j := range s.jobs {
		if j.op != "updateOutId" {
			secrets[j.value] = fmt.Sprintf("the number of job %d", j.idx)
		}
	}
	for _, b := range s.plan.bindings {
		sb := dyplsim.SeedBinding(b)
		for _, n := range []string{sb.PhoneNoA, sb.PhoneNoB, sb.PhoneNoX} {
			secrets[n] = "a number of binding " + sb.SubsId
		}
	}
	named := map[string]string{"logs": s.logs.String(), "enqueue output": s.cli.String(), "results, task errors, records, batch rows": strings.Join(surfaces, "\n")}
	for where, text := range named {
		for secret, what := range secrets {
			if i := strings.Index(text, secret); i >= 0 {
				line := text[max(0, strings.LastIndexByte(text[:i], '\n')+1):]
				if k := strings.IndexByte(line, '\n'); k >= 0 {
					line = line[:k]
				}
				add("leak", "%s holds %s in full: %s", where, what, mask.Text(strings.ReplaceAll(line, s.plan.secret, "<secret>")))
				break
			}
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Kind < vs[j].Kind })
	return vs
}

func chkStateOf(t *chkTask) string {
	if t == nil {
		return "not in the queue (purged or never queued)"
	}
	return t.state
}

func chkDeadCode(ctx context.Context, store *deadletter.Store, id string) string {
	if r, ok, _ := store.Get(ctx, id); ok {
		return r.Code + ", " + r.Reason
	}
	return "no record"
}

// chkHook injects the schedule's Redis faults into one worker's client,
// tracks the tasks the worker runs, and fakes the fence's scripts for the
// broken variants.
type chkHook struct {
	s                *chkSchedule
	n                int
	fail, lost, slow float64
	dead             atomic.Bool

	mu      sync.Mutex
	counts  map[string]uint64
	running map[string]bool
}

var errChkInjected = errors.New("chaos: injected Redis failure")

type chkTimeout struct{}

func (chkTimeout) Error() string   { return "chaos: injected Redis timeout: i/o timeout" }
func (chkTimeout) Timeout() bool   { return true }
func (chkTimeout) Temporary() bool { return true }

var _ net.Error = chkTimeout{}

// decide draws the fault of one command: "" (none), "fail", "lost" or
// "slow", from the seed, the worker, the command, its first key and how
// often the worker sent that command on that key.
func (h *chkHook) decide(name, key string) (string, time.Duration) {
	if !h.s.faultsOn.Load() || h.fail+h.lost+h.slow == 0 {
		return "", 0
	}
	h.mu.Lock()
	c := h.counts[name+" "+key]
	h.counts[name+" "+key] = c + 1
	h.mu.Unlock()
	f := fnv.New64a()
	fmt.Fprintf(f, "%d|%d|%s|%s|%d", h.s.plan.seed, h.n%h.s.plan.workers, name, key, c)
	x := f.Sum64()
	u := float64(x>>11) / (1 << 53)
	switch {
	case u < h.fail:
		return "fail", 0
	case u < h.fail+h.lost:
		return "lost", 0
	case u < h.fail+h.lost+h.slow:
		return "slow", time.Duration(20+x%150) * time.Millisecond
	}
	return "", 0
}

func (h *chkHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *chkHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			cmd.SetErr(errChkInjected)
			return errChkInjected
		}
		name := strings.ToLower(cmd.Name())
		args := cmd.Args()
		var keys []string
		key := ""
		if name == "evalsha" || name == "eval" {
			if len(args) > 2 {
				nk, _ := strconv.Atoi(fmt.Sprint(args[2]))
				for i := 3; i < 3+nk && i < len(args); i++ {
					keys = append(keys, fmt.Sprint(args[i]))
				}
			}
			if len(args) > 1 {
				key = fmt.Sprint(args[1])
			}
			if len(keys) > 0 {
				key += " " + keys[0]
			}
			if faked, err := h.variant(name, args, cmd); faked {
				return err
			}
		} else if len(args) > 1 {
			key = fmt.Sprint(args[1])
		}
		kind, delay := h.decide(name, key)
		var err error
		switch kind {
		case "fail":
			err = errChkInjected
		case "lost":
			_ = next(ctx, cmd)
			err = chkTimeout{}
		case "slow":
			time.Sleep(delay)
			if delay%2 == 0 && !h.dead.Load() {
				// Late, but it arrives; from a worker crashed meanwhile,
				// nothing does (its tasks are being recovered).
				_ = next(ctx, cmd)
			}
			err = chkTimeout{}
		default:
			err = next(ctx, cmd)
		}
		if kind != "" {
			cmd.SetErr(err)
		}
		if name == "evalsha" || name == "eval" {
			h.track(keys, cmd, err)
		}
		return err
	}
}

func (h *chkHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		setAll := func(err error) error {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		if h.dead.Load() {
			return setAll(errChkInjected)
		}
		// A fence script may go in a pipeline (the commit goes with the
		// job's result): the broken variants fake it there too.
		rest := cmds[:0:0]
		for _, c := range cmds {
			if n := strings.ToLower(c.Name()); n == "evalsha" || n == "eval" {
				if faked, _ := h.variant(n, c.Args(), c); faked {
					continue
				}
			}
			rest = append(rest, c)
		}
		if len(rest) == 0 {
			return nil
		}
		cmds = rest
		var names []string
		for _, c := range cmds {
			names = append(names, c.Name())
		}
		key := ""
		if len(cmds) > 0 && len(cmds[0].Args()) > 1 {
			key = fmt.Sprint(cmds[0].Args()[1])
		}
		kind, delay := h.decide("pipeline:"+strings.Join(names, ","), key)
		switch kind {
		case "fail":
			return setAll(errChkInjected)
		case "lost":
			_ = next(ctx, cmds)
			return setAll(chkTimeout{})
		case "slow":
			time.Sleep(delay)
			if delay%2 == 0 && !h.dead.Load() {
				_ = next(ctx, cmds)
			}
			return setAll(chkTimeout{})
		}
		return next(ctx, cmds)
	}
}

// track follows the tasks the worker runs: asynq's dequeue script returns
// the task message; every later script on the task's own key (done,
// complete, retry, archive, requeue) ends the run.
func (h *chkHook) track(keys []string, cmd redis.Cmder, err error) {
	if len(keys) == 4 && strings.HasSuffix(keys[0], ":pending") && strings.HasSuffix(keys[3], ":lease") {
		if err != nil {
			return
		}
		c, ok := cmd.(*redis.Cmd)
		if !ok {
			return
		}
		msg, ok := c.Val().(string)
		if !ok {
			return
		}
		if id := chkTaskID([]byte(msg)); id != "" {
			h.mu.Lock()
			h.running[id] = true
			h.mu.Unlock()
		}
		return
	}
	// Only a script that takes the task off its queue's active list ends
	// the run: the worker's own reads of a task (the sweep's GetTaskInfo
	// of a record's task, which may be the very task it runs) leave it
	// running, or the checker would expire the lease of a task a live
	// worker still runs, which asynq never does while the worker's
	// heartbeat extends it.
	if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, "asynq:{") && strings.HasSuffix(k, "}:active") }) {
		return
	}
	for _, k := range keys {
		if i := strings.Index(k, "}:t:"); i >= 0 && strings.HasPrefix(k, "asynq:{") {
			h.mu.Lock()
			delete(h.running, k[i+4:])
			h.mu.Unlock()
		}
	}
}

// variant fakes the fence's scripts for the broken variants.
func (h *chkHook) variant(name string, args []any, cmd redis.Cmder) (bool, error) {
	if len(args) < 2 {
		return false, nil
	}
	sha := fmt.Sprint(args[1])
	if name == "eval" {
		sha = fmt.Sprintf("%x", sha1.Sum([]byte(sha)))
	}
	c, ok := cmd.(*redis.Cmd)
	if !ok {
		return false, nil
	}
	switch {
	case h.s.plan.variant == chkVariantFenceOff && sha == fenceBegin.Hash():
		c.SetVal([]any{int64(fenceGo), int64(0), ""})
		return true, nil
	case h.s.plan.variant == chkVariantNoCommit && sha == fenceCommit.Hash():
		c.SetVal(int64(0))
		return true, nil
	}
	return false, nil
}

// chkTaskID reads the id (field 3) of an encoded asynq task message.
func chkTaskID(b []byte) string {
	for i := 0; i < len(b); {
		key, n := binary.Uvarint(b[i:])
		if n <= 0 {
			return ""
		}
		i += n
		switch key & 7 {
		case 0:
			_, n = binary.Uvarint(b[i:])
			if n <= 0 {
				return ""
			}
			i += n
		case 1:
			i += 8
		case 5:
			i += 4
		case 2:
			l, n := binary.Uvarint(b[i:])
			if n <= 0 || i+n+int(l) > len(b) {
				return ""
			}
			i += n
			if key>>3 == 3 {
				return string(b[i : i+int(l)])
			}
			i += int(l)
		default:
			return ""
		}
	}
	return ""
}

// chkProxy is a TCP proxy in front of the simulator that can be cut.
type chkProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func newChkProxy(target string) (*chkProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &chkProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

func (p *chkProxy) addr() string { return p.ln.Addr().String() }

func (p *chkProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *chkProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			if !p.track(c) || !p.track(u) {
				c.Close()
				u.Close()
				return
			}
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				done <- struct{}{}
			}
			go pipe(u, c)
			go pipe(c, u)
			<-done
			c.Close()
			u.Close()
			<-done
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, u)
			p.mu.Unlock()
		}()
	}
}

// Close stops accepting and cuts every connection.
func (p *chkProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.conns
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	p.ln.Close()
	for c := range conns {
		c.Close()
	}
}

// runChkSchedules runs the plans of seeds, at most parallel at once, and
// returns their reports in seed order.
func runChkSchedules(env *chkEnv, seeds []uint64, variant string, calm bool, parallel int, stopAtFirst bool) []*chkReport {
	reports := make([]*chkReport, len(seeds))
	sem := make(chan struct{}, parallel)
	var found atomic.Bool
	var wg sync.WaitGroup
	for i, seed := range seeds {
		if stopAtFirst && found.Load() {
			break
		}
		sem <- struct{}{}
		if stopAtFirst && found.Load() {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			rep := runChkSchedule(env, newChkPlan(seed, variant, calm))
			if len(rep.violations) > 0 {
				found.Store(true)
				kinds := map[string]int{}
				for _, v := range rep.violations {
					kinds[v.Kind]++
				}
				fmt.Fprintf(os.Stderr, "checker: seed %d%s: violations %v (%s)\n", seed, map[bool]string{true: " " + variant}[variant != ""], kinds, rep.took.Round(time.Millisecond))
			}
			reports[i] = rep
		})
	}
	wg.Wait()
	var out []*chkReport
	for _, r := range reports {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// chkReplay is the command that replays one schedule.
func chkReplay(seed uint64, variant string, calm bool) string {
	extra := ""
	if variant != "" {
		extra += " DYPLSQ_CHECK_VARIANT=" + variant
	}
	if calm {
		extra += " DYPLSQ_CHECK_CALM=1"
	}
	return fmt.Sprintf("REDIS_URL=%s DYPLSQ_CHECK_SEED=%d%s go test -tags chaos -race -count=1 -run 'TestChaosChecker$' ./worker/",
		chkOr(os.Getenv("REDIS_URL"), "redis://127.0.0.1:6379/0"), seed, extra)
}

func chkOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// reportChk logs every report and fails t for each schedule with a
// violation, printing its seed, replay command and violations. It returns
// the violation kinds found, with the first seed of each.
func reportChk(t *testing.T, reps []*chkReport, fail bool) map[string]uint64 {
	t.Helper()
	kinds := map[string]uint64{}
	total := map[string]int{}
	acts := map[string]int{}
	var bad int
	for _, r := range reps {
		if r.err != nil {
			t.Errorf("seed %d: the schedule did not run: %v", r.plan.seed, r.err)
			continue
		}
		for k, n := range r.outcomes {
			total[k] += n
		}
		for k, n := range r.acts {
			acts[k] += n
		}
		if len(r.violations) == 0 {
			continue
		}
		bad++
		var b strings.Builder
		fmt.Fprintf(&b, "VIOLATION in schedule seed %d (%s)\n  %s\n  replay: %s\n", r.plan.seed, r.took.Round(time.Millisecond), r.plan, chkReplay(r.plan.seed, r.plan.variant, r.plan.calm))
		seen := map[string]int{}
		for _, v := range r.violations {
			if _, ok := kinds[v.Kind]; !ok {
				kinds[v.Kind] = r.plan.seed
			}
			seen[v.Kind]++
			if seen[v.Kind] <= 3 {
				fmt.Fprintf(&b, "  [%s] %s\n", v.Kind, v.Detail)
			} else if seen[v.Kind] == 4 {
				fmt.Fprintf(&b, "  [%s] ... more\n", v.Kind)
			}
		}
		if dir := os.Getenv("TEST_ARTIFACTS"); dir != "" {
			path := filepath.Join(dir, fmt.Sprintf("checker-%d%s.log", r.plan.seed, r.plan.variant))
			if os.WriteFile(path, []byte(r.logs), 0o600) == nil {
				fmt.Fprintf(&b, "  logs: %s\n", path)
			}
		}
		if fail {
			t.Error(b.String())
		} else {
			t.Log(b.String())
		}
	}
	t.Logf("%d schedules, %d with violations; job outcomes %v; operator actions %v; violation kinds (first seed) %v", len(reps), bad, total, acts, kinds)
	return kinds
}

// TestCheckerCalm runs a few calm schedules (API faults that never hide
// an apply; no Redis faults, crashes or operator mistakes): the checker
// must find nothing there, or it reports what is not a bug.
func TestCheckerCalm(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real schedules")
	}
	env := newChkEnv(t)
	reps := runChkSchedules(env, []uint64{11, 12, 13}, chkVariantNone, true, 3, false)
	for _, r := range reps {
		safebuf.CheckLog(t, r.logs)
	}
	reportChk(t, reps, true)
}

// TestChkHookEndsARunOnlyWithItsTask: the hook ends a run when asynq
// takes the task off the active list (done, retry, archive), never when
// the worker merely reads the task (the sweep's GetTaskInfo of a record's
// task, which may be the task the worker runs): a run ended too soon
// looks orphaned, and the checker would expire the lease of a task a live
// worker still runs, which asynq never does.
func TestChkHookEndsARunOnlyWithItsTask(t *testing.T) {
	env := newChkEnv(t)
	rdb := redis.NewClient(env.opt)
	defer rdb.Close()
	h := &chkHook{s: &chkSchedule{plan: &chkPlan{}}, counts: map[string]uint64{}, running: map[string]bool{}}
	rdb.AddHook(h)
	q := fmt.Sprintf("chkhook-%d", time.Now().UnixNano())
	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.Queue(q), asynq.TaskID("run1")); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	defer func() { _ = insp.DeleteQueue(q, true) }()
	ran := make(chan struct{})
	release := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{q: 1}, Concurrency: 1,
		TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		close(ran)
		<-release
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	let := sync.OnceFunc(func() { close(release) })
	defer let()
	<-ran
	isRunning := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.running["run1"]
	}
	if !isRunning() {
		t.Fatal("the dequeued task is not tracked as running")
	}
	if _, err := insp.GetTaskInfo(q, "run1"); err != nil {
		t.Fatal(err)
	}
	if !isRunning() {
		t.Fatal("reading the task (GetTaskInfo) ended its run")
	}
	let()
	deadline := time.Now().Add(5 * time.Second)
	for isRunning() {
		if time.Now().After(deadline) {
			t.Fatal("the run did not end when asynq completed the task")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChkTaskID(t *testing.T) {
	// type "t" (field 1), payload (field 2), id "abc" (field 3), retry 5 (field 5).
	msg := []byte{0x0a, 1, 't', 0x12, 2, '{', '}', 0x1a, 3, 'a', 'b', 'c', 0x28, 5}
	if id := chkTaskID(msg); id != "abc" {
		t.Fatalf("id %q", id)
	}
	if id := chkTaskID([]byte{0xff}); id != "" {
		t.Fatalf("id %q from garbage", id)
	}
}
