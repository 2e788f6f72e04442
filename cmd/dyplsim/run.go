package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/logging"
)

const usageHeader = `dyplsim serves a local Dyplsapi (Phone Number Protection, 2017-05-25) API that
the official Alibaba Cloud Go SDK talks to unchanged: BindAxb, UpdateSubscription,
QuerySubscriptionDetail and UnbindSubscription, with signature, AccessKeyId,
timestamp and nonce checks, binding state, a per-AccessKey quota and fault
injection. A JSON control plane is served under /_sim/ on the same port
(bindings, stats, faults, quota, reset).

Point the SDK at it with client.Domain = "ADDR" (sdk.NewConfig() uses HTTP), or
run the worker with DYPLS_ENDPOINT=http://ADDR.

Usage:
  dyplsim [flags]

Environment:
  DYPLSIM_ACCESS_KEY_ID      default for --access-key-id
  DYPLSIM_ACCESS_KEY_SECRET  default for --access-key-secret (never printed)
  LOG_LEVEL, LOG_FORMAT      defaults for --log-level, --log-format

Flags:
`

// shutdownTimeout bounds the graceful shutdown; hanging calls are released
// at once.
const shutdownTimeout = 5 * time.Second

// options are dyplsim's flags as parsed.
type options struct {
	addr, akID, akSecret         string
	qps, queryQPS                float64
	burst, queryBurst            int
	throttleCode                 string
	throttleStatus               int
	latency, jitter, stsLifetime time.Duration
	seed                         int
	randSeed                     int64
	sameValue                    bool
	faultsPath, bindingsPath     string
	faultRate                    float64
	faultCode, faultAction       string
	logLevel, logFormat          string
}

// run starts the simulator and serves until ctx is done. It returns the
// process exit status: 0 after a clean shutdown, 1 if the server could not
// start, 2 for bad flags.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs, o := newFlagSet(getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = io.WriteString(stdout, usageHeader)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return usageError(stderr, err.Error())
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fmt.Sprintf("unexpected argument %q: dyplsim takes flags only", fs.Arg(0)))
	}
	secret := cmp.Or(o.akSecret, getenv("DYPLSIM_ACCESS_KEY_SECRET"), dyplsim.DefaultAccessKeySecret)
	if problem := o.check(); problem != "" {
		return usageError(stderr, problem)
	}
	log, err := logging.New(o.logLevel, o.logFormat, stderr)
	if err != nil {
		return usageError(stderr, err.Error())
	}
	faults, bindings, err := o.readFiles()
	if err != nil {
		return usageError(stderr, err.Error())
	}

	sim, srv, hostport, err := dyplsim.Start(o.config(secret, faults, log), o.addr)
	if err != nil {
		fmt.Fprintf(stderr, "dyplsim: %v\n", err)
		return 1
	}
	for i, b := range bindings {
		if _, err := sim.TryPutBinding(b); err != nil {
			srv.Close()
			return usageError(stderr, fmt.Sprintf("--bindings %s: binding %d: %v", o.bindingsPath, i, err))
		}
	}
	o.logStarted(log, sim, hostport, len(faults), len(bindings))
	fmt.Fprintf(stdout, "dyplsim listening on http://%s\n", hostport)

	<-ctx.Done()
	shutdown(log, sim, srv)
	return 0
}

// newFlagSet declares dyplsim's flags, with defaults from getenv where the
// environment gives them.
func newFlagSet(getenv func(string) string) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("dyplsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8086", "listen `address` as host:port (port 0 picks a free one)")
	fs.StringVar(&o.akID, "access-key-id", cmp.Or(getenv("DYPLSIM_ACCESS_KEY_ID"), dyplsim.DefaultAccessKeyID), "the one AccessKeyId accepted")
	fs.StringVar(&o.akSecret, "access-key-secret", "", "its AccessKeySecret (default $DYPLSIM_ACCESS_KEY_SECRET, else \""+dyplsim.DefaultAccessKeySecret+"\")")
	fs.Float64Var(&o.qps, "qps", 10000, "UpdateSubscription quota, calls per second per AccessKeyId; 0 = unlimited")
	fs.IntVar(&o.burst, "burst", 0, "UpdateSubscription bucket size; 0 = max(1, qps/10)")
	fs.Float64Var(&o.queryQPS, "query-qps", 5000, "quota shared by BindAxb, QuerySubscriptionDetail and UnbindSubscription; 0 = unlimited")
	fs.IntVar(&o.queryBurst, "query-burst", 0, "size of that bucket; 0 = max(1, query-qps/10)")
	fs.StringVar(&o.throttleCode, "throttle-code", "Throttling.User", "answer over quota: Throttling.User, Throttling.Api or Throttling (gateway error with --throttle-status), or isv.FLOW_LIMIT (HTTP 200 business code)")
	fs.IntVar(&o.throttleStatus, "throttle-status", 400, "HTTP status of gateway throttling (400 or 429, any 4xx/5xx)")
	fs.DurationVar(&o.latency, "latency", 0, "delay added to every API call, e.g. 20ms")
	fs.DurationVar(&o.jitter, "jitter", 0, "extra random delay in [0, jitter) per call")
	fs.DurationVar(&o.stsLifetime, "sts-lifetime", dyplsim.DefaultSTSLifetime, "how long the STS credentials of the credentials URI (http://ADDR/_sim/credentials) are accepted")
	fs.IntVar(&o.seed, "seed", 0, "create N sample bindings: SubsId 1000000000000000+i, X 170+(i-1) as 8 digits, A 138..., B 139..., pool "+dyplsim.DefaultPoolKey)
	fs.Int64Var(&o.randSeed, "rand-seed", 0, "seed for generated ids, jitter and fault rates; 0 = random")
	fs.BoolVar(&o.sameValue, "same-value-conflicts", false, "updateNoA/updateNoB with the number the binding already holds answers isv.BIND_CONFLICT instead of OK")
	fs.StringVar(&o.faultsPath, "faults", "", "JSON file with an array of fault rules, installed at start and on reset")
	fs.StringVar(&o.bindingsPath, "bindings", "", "JSON file with an array of bindings (as POST /_sim/bindings takes them), stored at start after the --seed ones")
	fs.Float64Var(&o.faultRate, "fault-rate", 0, "probability 0..1 that a call gets --fault-code (after the rules of --faults)")
	fs.StringVar(&o.faultCode, "fault-code", "isp.SYSTEM_ERROR", "code of --fault-rate faults: isv.*/isp.* answer HTTP 200 with that Code, others are gateway errors (e.g. ServiceUnavailable = 503)")
	fs.StringVar(&o.faultAction, "fault-action", "", "limit --fault-rate to one Action, e.g. UpdateSubscription; empty = every action")
	fs.StringVar(&o.logLevel, "log-level", cmp.Or(getenv("LOG_LEVEL"), "info"), "debug (one line per call), info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", cmp.Or(getenv("LOG_FORMAT"), "json"), "json or console")
	return fs, o
}

// check returns what is wrong with the flags, or "".
func (o *options) check() string {
	switch {
	case o.akID == "":
		return "--access-key-id must not be empty"
	case o.qps < 0 || o.queryQPS < 0:
		return "--qps and --query-qps must be >= 0"
	case o.burst < 0 || o.queryBurst < 0:
		return "--burst and --query-burst must be >= 0"
	case !validThrottleCode(o.throttleCode):
		return fmt.Sprintf("--throttle-code %q: want Throttling.User, Throttling.Api, Throttling or isv.FLOW_LIMIT", o.throttleCode)
	case o.throttleStatus < 400 || o.throttleStatus > 599:
		return fmt.Sprintf("--throttle-status %d: want a 4xx or 5xx status", o.throttleStatus)
	case o.latency < 0 || o.jitter < 0:
		return "--latency and --jitter must be >= 0"
	case o.seed < 0 || o.seed > 100_000_000:
		return fmt.Sprintf("--seed %d: want 0 to 100000000", o.seed)
	case o.faultRate < 0 || o.faultRate > 1:
		return fmt.Sprintf("--fault-rate %v: want 0 to 1", o.faultRate)
	case o.faultRate > 0 && o.faultCode == "":
		return "--fault-code must not be empty when --fault-rate is set"
	}
	return ""
}

// readFiles reads the fault rules of --faults, adds the --fault-rate rule,
// and reads the bindings of --bindings.
func (o *options) readFiles() ([]dyplsim.FaultRule, []dyplsim.Binding, error) {
	var faults []dyplsim.FaultRule
	var bindings []dyplsim.Binding
	var err error
	if o.faultsPath != "" {
		if faults, err = readFaults(o.faultsPath); err != nil {
			return nil, nil, err
		}
	}
	if o.bindingsPath != "" {
		if bindings, err = readBindings(o.bindingsPath); err != nil {
			return nil, nil, err
		}
	}
	if o.faultRate > 0 {
		faults = append(faults, rateFault(o.faultAction, o.faultCode, o.faultRate))
	}
	return faults, bindings, nil
}

// config is the simulator's Config for the flags.
func (o *options) config(secret string, faults []dyplsim.FaultRule, log zerolog.Logger) dyplsim.Config {
	return dyplsim.Config{
		AccessKeys:         map[string]string{o.akID: secret},
		QPS:                o.qps,
		Burst:              o.burst,
		QueryQPS:           o.queryQPS,
		QueryBurst:         o.queryBurst,
		ThrottleCode:       o.throttleCode,
		ThrottleStatus:     o.throttleStatus,
		Latency:            o.latency,
		Jitter:             o.jitter,
		RandSeed:           o.randSeed,
		Seed:               o.seed,
		SameValueConflicts: o.sameValue,
		STSLifetime:        o.stsLifetime,
		Faults:             faults,
		Logger:             log,
	}
}

// logStarted writes the line saying the simulator serves, with its
// settings.
func (o *options) logStarted(log zerolog.Logger, sim *dyplsim.Sim, hostport string, faults, bindings int) {
	q := sim.Quota()
	log.Info().Str("addr", hostport).Str("access_key_id", o.akID).
		Float64("qps", q.QPS).Int("burst", q.Burst).Float64("query_qps", q.QueryQPS).Int("query_burst", q.QueryBurst).
		Str("throttle_code", o.throttleCode).Int("seed", o.seed).Int64("rand_seed", sim.RandSeed()).
		Dur("latency", o.latency).Dur("jitter", o.jitter).Int("faults", faults).Int("bindings", bindings).
		Bool("same_value_conflicts", o.sameValue).Msg("dyplsim started")
}

// shutdown stops the server, closing the connections left after
// shutdownTimeout, and logs the calls served.
func shutdown(log zerolog.Logger, sim *dyplsim.Sim, srv *http.Server) {
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("graceful shutdown incomplete; closing connections")
		srv.Close()
	}
	st := sim.Stats()
	log.Info().Int("calls", st.Total).Int("applied", st.Applied).Msg("stopped")
}

func usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "dyplsim: %s (see dyplsim --help)\n", strings.TrimSpace(msg))
	return 2
}

func validThrottleCode(c string) bool {
	switch c {
	case "Throttling.User", "Throttling.Api", "Throttling", "isv.FLOW_LIMIT":
		return true
	}
	return false
}

// rateFault builds the --fault-rate rule: a business code for isv./isp.
// codes, otherwise a gateway error.
func rateFault(action, code string, rate float64) dyplsim.FaultRule {
	kind := dyplsim.FaultGateway
	if strings.HasPrefix(code, "isv.") || strings.HasPrefix(code, "isp.") {
		kind = dyplsim.FaultCode
	}
	return dyplsim.FaultRule{Action: action, Kind: kind, Code: code, Rate: rate}
}

// readFaults reads a JSON array of fault rules.
func readFaults(path string) ([]dyplsim.FaultRule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--faults: %v", err)
	}
	var rules []dyplsim.FaultRule
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, fmt.Errorf("--faults %s: want a JSON array of fault rules: %v", path, err)
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("--faults %s: rule %d: %v", path, i, err)
		}
	}
	return rules, nil
}

// readBindings reads a JSON array of bindings.
func readBindings(path string) ([]dyplsim.Binding, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--bindings: %v", err)
	}
	var out []dyplsim.Binding
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("--bindings %s: want a JSON array of bindings: %v", path, err)
	}
	return out, nil
}
