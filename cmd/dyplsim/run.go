package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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

// run starts the simulator and serves until ctx is done. It returns the
// process exit status: 0 after a clean shutdown, 1 if the server could not
// start, 2 for bad flags.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dyplsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:8086", "listen `address` as host:port (port 0 picks a free one)")
	akID := fs.String("access-key-id", cmp.Or(getenv("DYPLSIM_ACCESS_KEY_ID"), dyplsim.DefaultAccessKeyID), "the one AccessKeyId accepted")
	akSecret := fs.String("access-key-secret", "", "its AccessKeySecret (default $DYPLSIM_ACCESS_KEY_SECRET, else \""+dyplsim.DefaultAccessKeySecret+"\")")
	qps := fs.Float64("qps", 10000, "UpdateSubscription quota, calls per second per AccessKeyId; 0 = unlimited")
	burst := fs.Int("burst", 0, "UpdateSubscription bucket size; 0 = max(1, qps/10)")
	queryQPS := fs.Float64("query-qps", 5000, "quota shared by BindAxb, QuerySubscriptionDetail and UnbindSubscription; 0 = unlimited")
	queryBurst := fs.Int("query-burst", 0, "size of that bucket; 0 = max(1, query-qps/10)")
	throttleCode := fs.String("throttle-code", "Throttling.User", "answer over quota: Throttling.User, Throttling.Api or Throttling (gateway error with --throttle-status), or isv.FLOW_LIMIT (HTTP 200 business code)")
	throttleStatus := fs.Int("throttle-status", 400, "HTTP status of gateway throttling (400 or 429, any 4xx/5xx)")
	latency := fs.Duration("latency", 0, "delay added to every API call, e.g. 20ms")
	jitter := fs.Duration("jitter", 0, "extra random delay in [0, jitter) per call")
	stsLifetime := fs.Duration("sts-lifetime", dyplsim.DefaultSTSLifetime, "how long the STS credentials of the credentials URI (http://ADDR/_sim/credentials) are accepted")
	seed := fs.Int("seed", 0, "create N sample bindings: SubsId 1000000000000000+i, X 170+(i-1) as 8 digits, A 138..., B 139..., pool "+dyplsim.DefaultPoolKey)
	randSeed := fs.Int64("rand-seed", 0, "seed for generated ids, jitter and fault rates; 0 = random")
	sameValue := fs.Bool("same-value-conflicts", false, "updateNoA/updateNoB with the number the binding already holds answers isv.BIND_CONFLICT instead of OK")
	faultsPath := fs.String("faults", "", "JSON file with an array of fault rules, installed at start and on reset")
	bindingsPath := fs.String("bindings", "", "JSON file with an array of bindings (as POST /_sim/bindings takes them), stored at start after the --seed ones")
	faultRate := fs.Float64("fault-rate", 0, "probability 0..1 that a call gets --fault-code (after the rules of --faults)")
	faultCode := fs.String("fault-code", "isp.SYSTEM_ERROR", "code of --fault-rate faults: isv.*/isp.* answer HTTP 200 with that Code, others are gateway errors (e.g. ServiceUnavailable = 503)")
	faultAction := fs.String("fault-action", "", "limit --fault-rate to one Action, e.g. UpdateSubscription; empty = every action")
	logLevel := fs.String("log-level", cmp.Or(getenv("LOG_LEVEL"), "info"), "debug (one line per call), info, warn or error")
	logFormat := fs.String("log-format", cmp.Or(getenv("LOG_FORMAT"), "json"), "json or console")

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
	secret := cmp.Or(*akSecret, getenv("DYPLSIM_ACCESS_KEY_SECRET"), dyplsim.DefaultAccessKeySecret)

	var problem string
	switch {
	case *akID == "":
		problem = "--access-key-id must not be empty"
	case *qps < 0 || *queryQPS < 0:
		problem = "--qps and --query-qps must be >= 0"
	case *burst < 0 || *queryBurst < 0:
		problem = "--burst and --query-burst must be >= 0"
	case !validThrottleCode(*throttleCode):
		problem = fmt.Sprintf("--throttle-code %q: want Throttling.User, Throttling.Api, Throttling or isv.FLOW_LIMIT", *throttleCode)
	case *throttleStatus < 400 || *throttleStatus > 599:
		problem = fmt.Sprintf("--throttle-status %d: want a 4xx or 5xx status", *throttleStatus)
	case *latency < 0 || *jitter < 0:
		problem = "--latency and --jitter must be >= 0"
	case *seed < 0 || *seed > 100_000_000:
		problem = fmt.Sprintf("--seed %d: want 0 to 100000000", *seed)
	case *faultRate < 0 || *faultRate > 1:
		problem = fmt.Sprintf("--fault-rate %v: want 0 to 1", *faultRate)
	case *faultRate > 0 && *faultCode == "":
		problem = "--fault-code must not be empty when --fault-rate is set"
	}
	if problem != "" {
		return usageError(stderr, problem)
	}
	log, err := logging.New(*logLevel, *logFormat, stderr)
	if err != nil {
		return usageError(stderr, err.Error())
	}
	var faults []dyplsim.FaultRule
	if *faultsPath != "" {
		if faults, err = readFaults(*faultsPath); err != nil {
			return usageError(stderr, err.Error())
		}
	}
	var bindings []dyplsim.Binding
	if *bindingsPath != "" {
		if bindings, err = readBindings(*bindingsPath); err != nil {
			return usageError(stderr, err.Error())
		}
	}
	if *faultRate > 0 {
		faults = append(faults, rateFault(*faultAction, *faultCode, *faultRate))
	}

	cfg := dyplsim.Config{
		AccessKeys:         map[string]string{*akID: secret},
		QPS:                *qps,
		Burst:              *burst,
		QueryQPS:           *queryQPS,
		QueryBurst:         *queryBurst,
		ThrottleCode:       *throttleCode,
		ThrottleStatus:     *throttleStatus,
		Latency:            *latency,
		Jitter:             *jitter,
		RandSeed:           *randSeed,
		Seed:               *seed,
		SameValueConflicts: *sameValue,
		STSLifetime:        *stsLifetime,
		Faults:             faults,
		Logger:             log,
	}
	sim, srv, hostport, err := dyplsim.Start(cfg, *addr)
	if err != nil {
		fmt.Fprintf(stderr, "dyplsim: %v\n", err)
		return 1
	}
	for i, b := range bindings {
		if _, err := sim.TryPutBinding(b); err != nil {
			srv.Close()
			return usageError(stderr, fmt.Sprintf("--bindings %s: binding %d: %v", *bindingsPath, i, err))
		}
	}
	q := sim.Quota()
	log.Info().Str("addr", hostport).Str("access_key_id", *akID).
		Float64("qps", q.QPS).Int("burst", q.Burst).Float64("query_qps", q.QueryQPS).Int("query_burst", q.QueryBurst).
		Str("throttle_code", *throttleCode).Int("seed", *seed).Int64("rand_seed", sim.RandSeed()).
		Dur("latency", *latency).Dur("jitter", *jitter).Int("faults", len(faults)).Int("bindings", len(bindings)).
		Bool("same_value_conflicts", *sameValue).Msg("dyplsim started")
	fmt.Fprintf(stdout, "dyplsim listening on http://%s\n", hostport)

	<-ctx.Done()
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("graceful shutdown incomplete; closing connections")
		srv.Close()
	}
	st := sim.Stats()
	log.Info().Int("calls", st.Total).Int("applied", st.Applied).Msg("stopped")
	return 0
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
