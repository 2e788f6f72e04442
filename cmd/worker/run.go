package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/api"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/envflag"
	"github.com/dyplsq/dyplsq/logging"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/monitor"
	"github.com/dyplsq/dyplsq/redisconn"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

var usage = `worker runs dyplsq binding-update jobs (Dyplsapi UpdateSubscription) from Redis.

Usage: worker [flags]

Each job ends applied, superseded or dead; on the way it may retry (throttled:
short delay, not counted; transient: backoff, counted) or wait in a halt (an
account-wide code such as SignatureDoesNotMatch stops all calls until a probe
succeeds). The monitoring UI is at http://MONITOR_ADDR/monitoring/, Prometheus
metrics at /metrics, health at /healthz and /readyz. With API_ADDR set, the
HTTP API (POST /v1/updates, GET /v1/updates/{taskId}, GET /v1/batches/{batchId},
GET /v1/openapi.json) is served there, for the tokens of API_TOKENS.

Credentials: a static AccessKey when ALIBABA_CLOUD_ACCESS_KEY_ID and
ALIBABA_CLOUD_ACCESS_KEY_SECRET are set (with ALIBABA_CLOUD_SECURITY_TOKEN
for a fixed STS token, which cannot be refreshed). Otherwise the Alibaba
Cloud SDK's default credentials chain, which takes the first of these that
hands out credentials and keeps to it:
` + credentialSources() + `
STS credentials are refreshed before they expire; a call refused for an
expired token is made again with fresh ones, and only a source that fails
halts the worker (code Credentials.Unavailable, with the source's reason).
One log line at start names the source in use ("credentials source", e.g.
default/credential_uri), never a secret. On a machine that is not an ECS
instance, ALIBABA_CLOUD_ECS_METADATA_DISABLED=true skips the metadata step.
At start one signed QuerySubscriptionDetail checks them: /readyz stays false
until a signed call is answered, and a refused secret halts the worker with
the setting to check. enqueue queue probe makes halted workers probe now.
SIGINT or SIGTERM: stop fetching, finish calls in flight, exit 0.`

type config struct {
	redis    redisconn.Config
	api      dypls.Config
	worker   worker.Config
	monitor  monitor.Config
	httpAPI  *api.Config // nil: no HTTP API
	logLevel string
	logFmt   string
}

func parse(args []string, getenv func(string) string, stdout io.Writer) (*config, error) {
	s := envflag.New("worker", usage, getenv)
	redisSettings := redisconn.AddSettings(s)
	logLevel := s.String("LOG_LEVEL", "log-level", "info", "debug, info, warn or error")
	logFmt := s.String("LOG_FORMAT", "log-format", "json", "json or console")
	akID := s.String("ALIBABA_CLOUD_ACCESS_KEY_ID", "access-key-id", "", "static AccessKey ID for Dyplsapi (unset: the default credentials chain)")
	akSecret := s.Secret("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "access-key-secret", "its secret (prefer the variable: flags show in ps)")
	stsToken := s.Secret("ALIBABA_CLOUD_SECURITY_TOKEN", "security-token", "fixed STS security token of that AccessKey (optional; never refreshed)")
	endpoint := s.String("DYPLS_ENDPOINT", "endpoint", dypls.DefaultEndpoint, "Dyplsapi URL; http://127.0.0.1:8086 for the simulator")
	region := s.String("DYPLS_REGION", "region", dypls.DefaultRegion, "Alibaba Cloud region")
	qps := s.Float("DYPLS_QPS", "qps", worker.DefaultQPS, 0, "UpdateSubscription calls per second across all workers together (0: no cap)")
	timeout := s.Duration("DYPLS_TIMEOUT", "timeout", dypls.DefaultTimeout, "timeout of one API call (at most "+fmtMinutes(worker.MaxCallTimeout)+")")
	concurrency := s.Int("WORKER_CONCURRENCY", "concurrency", worker.DefaultConcurrency, 1, "jobs run at once by this worker")
	queues := s.String("WORKER_QUEUES", "queues", defaultQueues, "queues to serve with their weights")
	shards := s.String("WORKER_SHARDS", "shards", "",
		"split queues into shards, each its own Redis Cluster slot, e.g. dyplsq-bulk:3 (name:count; unset: as split in Redis; 1: not split)")
	poll := s.Duration("WORKER_POLL_INTERVAL", "poll-interval", worker.DefaultTaskCheckInterval,
		"how long a worker whose queues are empty waits before it looks again (1ms to 5s): a job enqueued then waits about this long; each look is a dequeue script per queue")
	maxAge := s.Duration("JOB_MAX_AGE", "job-max-age", worker.DefaultMaxAge, fmt.Sprintf("a job older than this is dead (at most %.0fh)", tasks.MaxJobAge.Hours()))
	maxAttempts := s.Int("JOB_MAX_ATTEMPTS", "job-max-attempts", worker.DefaultMaxAttempts, 1, "counted (transient) attempts before a job is dead")
	retryForS := s.String("JOB_RETRY_FOR", "job-retry-for", "", "retry budget by time: transient failures are retried until this long after a job's first failure, whatever JOB_MAX_ATTEMPTS says (e.g. 30m; unset: JOB_MAX_ATTEMPTS counts)")
	backoffBase := s.Duration("JOB_BACKOFF_BASE", "job-backoff-base", worker.DefaultBackoffBase, "first transient backoff ceiling; it doubles per attempt up to "+fmtMinutes(worker.DefaultBackoffMax)+" (full jitter)")
	monAddr := s.String("MONITOR_ADDR", "monitor-addr", "127.0.0.1:8080", "address of the UI, /metrics, /healthz, /readyz")
	monUser := s.String("MONITOR_USER", "monitor-user", "", "basic-auth user for the UI and /metrics (required off loopback)")
	monPass := s.Secret("MONITOR_PASSWORD", "monitor-password", "basic-auth password")
	monRO := s.Bool("MONITOR_READONLY", "monitor-readonly", true, "the UI cannot change tasks or queues")
	keyPrefix := s.String("DYPLSQ_KEY_PREFIX", "key-prefix", tasks.DefaultKeyPrefix, "advanced: prefix of dyplsq's own Redis keys; must match enqueue's")
	apiSet := addAPISettings(s)
	if err := s.Parse(args, stdout); err != nil {
		return nil, err
	}
	if len(s.Args()) > 0 {
		return nil, fmt.Errorf("unexpected argument %q (worker takes flags only; see --help)", s.Args()[0])
	}
	c := &config{logLevel: *logLevel, logFmt: *logFmt}
	var err error
	if c.redis, err = redisSettings.Config(getenv); err != nil {
		return nil, err
	}
	c.api = dypls.Config{Endpoint: *endpoint, Region: *region, AccessKeyID: *akID, AccessKeySecret: *akSecret,
		SecurityToken: *stsToken, Timeout: *timeout}
	if err := c.api.Validate(); err != nil {
		return nil, err
	}
	qs, err := parseQueues(*queues)
	if err != nil {
		return nil, err
	}
	sh, err := parseShards(*shards)
	if err != nil {
		return nil, err
	}
	var retryFor time.Duration
	if v := strings.TrimSpace(*retryForS); v != "" {
		if retryFor, err = time.ParseDuration(v); err != nil || retryFor <= 0 {
			return nil, fmt.Errorf("JOB_RETRY_FOR (--job-retry-for): %q is not a positive duration such as 30m", v)
		}
	}
	if retryFor >= *maxAge {
		return nil, fmt.Errorf("JOB_RETRY_FOR (--job-retry-for) %s must be below JOB_MAX_AGE (--job-max-age) %s: a job older than that is dead anyway", retryFor, *maxAge)
	}
	if *backoffBase < 10*time.Millisecond || *backoffBase > worker.DefaultBackoffMax {
		return nil, fmt.Errorf("JOB_BACKOFF_BASE (--job-backoff-base): %s is out of range (10ms to %s)", *backoffBase, fmtMinutes(worker.DefaultBackoffMax))
	}
	if *poll < time.Millisecond || *poll > 5*time.Second {
		return nil, fmt.Errorf("WORKER_POLL_INTERVAL (--poll-interval): %s is out of range (1ms to 5s)", *poll)
	}
	c.worker = worker.Config{Queues: qs, Shards: sh, Concurrency: *concurrency, MaxAttempts: *maxAttempts, MaxAge: *maxAge, QPS: *qps, KeyPrefix: *keyPrefix,
		RetryFor: retryFor, BackoffBase: *backoffBase, TaskCheckInterval: *poll}
	c.monitor = monitor.Config{Addr: *monAddr, User: *monUser, Password: *monPass, ReadOnly: *monRO}
	if err := monitor.CheckAddr(*monAddr, *monUser, *monPass); err != nil {
		return nil, err
	}
	if c.httpAPI, err = apiSet.config(*keyPrefix); err != nil {
		return nil, err
	}
	return c, nil
}

// defaultQueues is WORKER_QUEUES's default: the worker's default queues
// with their weights.
var defaultQueues = fmt.Sprintf("%s:%d,%s:%d",
	tasks.DefaultLiveQueue, worker.DefaultLiveWeight, tasks.DefaultBulkQueue, worker.DefaultBulkWeight)

// fmtMinutes writes a whole number of minutes as the settings are written
// ("1m").
func fmtMinutes(d time.Duration) string { return fmt.Sprintf("%dm", d/time.Minute) }

// parseQueues reads "name:weight,name:weight".
func parseQueues(s string) (map[string]int, error) {
	out, err := parsePairs("WORKER_QUEUES (--queues)", "weight", s, false)
	if err == nil && len(out) == 0 {
		err = errors.New("WORKER_QUEUES (--queues): no queue named")
	}
	return out, err
}

// parseShards reads "name:count,name:count".
func parseShards(s string) (map[string]int, error) {
	out, err := parsePairs("WORKER_SHARDS (--shards)", "shard count", s, true)
	for q, n := range out {
		if n > tasks.MaxShards {
			return nil, fmt.Errorf("WORKER_SHARDS (--shards): queue %q: %d shards, at most %d", q, n, tasks.MaxShards)
		}
	}
	return out, err
}

// parsePairs reads "name:n,name:n" of setting, where n (what) is a whole
// number ≥ 1, required or 1 by default.
func parsePairs(setting, what, s string, required bool) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, found := strings.Cut(part, ":")
		weight := 1
		if found || required {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%s: %s %q of queue %q is not a whole number ≥ 1 (want name:%s,name:%s)", setting, what, w, name, what, what)
			}
			weight = n
		}
		if name == "" {
			return nil, fmt.Errorf("%s: empty queue name in %q", setting, s)
		}
		out[name] = weight
	}
	return out, nil
}

// run reads the settings, connects to Redis and Dyplsapi, starts the
// worker, the monitor and the HTTP API, and serves until ctx is done. It
// returns the process exit status: 0 after --help or a clean shutdown, 2 if
// the settings are wrong or the worker could not start.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, getenv, stdout)
	if errors.Is(err, envflag.ErrHelp) {
		return 0
	}
	if err != nil {
		return failed(stderr, mask.Text(err.Error()))
	}
	log, err := logging.New(cfg.logLevel, cfg.logFmt, stderr)
	if err != nil {
		return failed(stderr, err.Error())
	}
	// The worker and the monitor add their own component; the lines of
	// this command itself say worker.
	base := log
	log = log.With().Str("component", "worker").Logger()
	redis.SetLogger(logging.RedisLogger{L: base.With().Str("component", "go-redis").Logger()})

	rdb, err := openRedis(ctx, cfg.redis, log)
	if err != nil {
		return failed(stderr, err.Error())
	}
	defer rdb.Close()
	warnUnusedQueues(rdb, cfg.worker.Queues, log)

	api, err := dypls.New(cfg.api)
	if err != nil {
		return failed(stderr, err.Error())
	}
	defer api.Close()
	logCredentialSource(log, api)

	svc, err := startServices(cfg, rdb, api, base)
	if err != nil {
		return failed(stderr, err.Error())
	}
	log.Info().Str("redis", cfg.redis.String()).Str("endpoint", cfg.api.Endpoint).
		Interface("queues", svc.w.Queues()).Int("concurrency", cfg.worker.Concurrency).
		Str("monitor", "http://"+svc.monAddr+"/monitoring/").Msg("worker started")

	<-ctx.Done()
	log.Info().Msg("shutting down: no new jobs; waiting for calls in flight")
	svc.shutdown()
	log.Info().Msg("worker stopped")
	return 0
}

// failed prints why the worker cannot run and returns its exit status, 2.
func failed(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "worker: %s\n", msg)
	return 2
}

// openRedis connects to Redis, checks that it answers within 10 seconds,
// and logs what Redis's settings put at risk.
func openRedis(ctx context.Context, cfg redisconn.Config, log zerolog.Logger) (redis.UniversalClient, error) {
	rdb, err := redisconn.Open(cfg)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %s", cfg, mask.Text(err.Error()))
	}
	if warns, err := redisconn.Warnings(ctx, rdb); err == nil {
		for _, w := range warns {
			log.Warn().Msg(w)
		}
	}
	return rdb, nil
}

// services are what the worker command serves: the worker, the monitor
// (listening on monAddr) and the HTTP API.
type services struct {
	w       *worker.Worker
	mon     *monitor.Server
	monAddr string
	stopAPI func(context.Context)
}

// startServices starts the monitor, the HTTP API (when configured) and the
// worker, which share one Prometheus registry. When one cannot start, those
// started before it are stopped.
func startServices(cfg *config, rdb redis.UniversalClient, api *dypls.Client, log zerolog.Logger) (*services, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	wc := cfg.worker
	wc.Logger = log
	wc.Registry = reg
	w, err := worker.New(wc, rdb, api)
	if err != nil {
		return nil, err
	}

	mc := cfg.monitor
	mc.RedisConnOpt = monitor.SharedRedis{Client: rdb}
	mc.Registry = reg
	mc.Inspector = w.Inspector()
	mc.Ready = w.Ready
	mc.Logger = log
	mc.KeyPrefix = cfg.worker.KeyPrefix
	mon, err := monitor.New(mc)
	if err != nil {
		return nil, err
	}
	addr, err := mon.Start()
	if err != nil {
		return nil, fmt.Errorf("MONITOR_ADDR %s: %s", cfg.monitor.Addr, err)
	}
	stopAPI, err := startAPI(cfg.httpAPI, rdb, reg, log)
	if err != nil {
		_ = mon.Shutdown(context.Background())
		return nil, err
	}
	if err := w.Start(); err != nil {
		stopAPI(context.Background())
		_ = mon.Shutdown(context.Background())
		return nil, fmt.Errorf("start: %s", mask.Text(err.Error()))
	}
	return &services{w: w, mon: mon, monAddr: addr, stopAPI: stopAPI}, nil
}

// shutdown stops the HTTP API first (no new enqueues), then the worker,
// which waits for the calls in flight, then the monitor.
func (s *services) shutdown() {
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.stopAPI(actx)
	acancel()
	s.w.Shutdown()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = s.mon.Shutdown(sctx)
}

// credentialSources lists the default chain's sources for --help.
func credentialSources() string {
	var b strings.Builder
	for i, src := range dypls.CredentialSources {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, src)
	}
	return strings.TrimRight(b.String(), "\n")
}

// logCredentialSource writes the one line that names where the
// credentials come from, or why none were found (the worker then halts
// until the source hands some out).
func logCredentialSource(log zerolog.Logger, api *dypls.Client) {
	src, err := api.CredentialSource()
	if err != nil {
		log.Error().Str("credentials", "none").Str("detail", mask.Text(err.Error())).
			Msg("credentials source: none handed out credentials; calls halt until one does")
		return
	}
	log.Info().Str("credentials", src).Msg("credentials source")
}

// warnUnusedQueues warns about each configured queue that is not a default
// queue and has never had a task: most likely a typo in WORKER_QUEUES,
// which would leave the queue meant unserved.
func warnUnusedQueues(rdb redis.UniversalClient, queues map[string]int, log zerolog.Logger) {
	known, err := admin.QueuesInUse(asynq.NewInspectorFromRedisClient(rdb), false)
	if err != nil {
		log.Warn().Err(err).Msg("cannot check WORKER_QUEUES against the queues in use")
		return
	}
	for _, q := range slices.Sorted(maps.Keys(queues)) {
		if slices.Contains(known, q) {
			continue
		}
		msg := "WORKER_QUEUES names a queue nothing has been queued to and that is not a default queue (" +
			strings.Join(admin.DefaultQueues, ", ") + "): a typo?"
		if c := admin.Closest(q, known); c != "" {
			msg += " Did you mean " + c + "?"
		}
		log.Warn().Str("queue", q).Msg(msg)
	}
}
