package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dyplsq/dyplsq/internal/redisserver"
)

const usage = `demo runs dyplsq end to end on a throwaway Redis.

Usage: demo [--keep] [--redis auto|server|memory] [--bin DIR] [--examples DIR]

It starts Redis (a local redis-server on a free port if installed, else an
in-memory Redis inside the demo), the simulator (dyplsim) with sample
bindings and a few scripted faults, and a worker; queues examples/sample.csv
with "enqueue --wait --report", whose rows end applied, superseded,
throttled-then-applied, transient-then-applied and dead; prints the outcome
table, the report and the dead letters; and stops everything it started.
Dead rows are the point of the demo: it exits 0 when every row ended as
the sample file says.

With --keep everything stays up and the monitoring UI's address and login
are printed, until Ctrl-C.`

func bg() context.Context { return context.Background() }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	keep := fs.Bool("keep", false, "")
	mode := fs.String("redis", "auto", "")
	binDir := fs.String("bin", "", "")
	examples := fs.String("examples", "examples", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "demo: %v (see demo --help)\n", err)
		return 2
	}
	switch *mode {
	case "auto", "server", "memory":
	default:
		fmt.Fprintf(stderr, "demo: --redis %q: want auto, server or memory\n", *mode)
		return 2
	}
	if *binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "demo: %v\n", err)
			return 2
		}
		*binDir = filepath.Dir(exe)
	}
	for _, b := range []string{"dyplsim", "worker", "enqueue"} {
		if _, err := os.Stat(filepath.Join(*binDir, b)); err != nil {
			fmt.Fprintf(stderr, "demo: %s not found in %s: build them first (go build -o bin/ ./cmd/...), or run make demo\n", b, *binDir)
			return 2
		}
	}
	d := &demo{ctx: ctx, bin: *binDir, examples: *examples, out: stdout, errw: stderr}
	defer d.cleanup()
	if err := d.start(*mode, *keep); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	code := d.batch()
	if code != 0 {
		return code
	}
	if *keep {
		fmt.Fprintf(stdout, "\nEverything keeps running. Monitoring UI: %s/monitoring/ (user %s, password %s)\n", d.monitorURL, d.user, d.password)
		fmt.Fprintf(stdout, "Metrics: %s/metrics   Simulator: http://%s/_sim/stats   Redis: %s\n", d.monitorURL, d.simAddr, d.redis.URL)
		fmt.Fprintf(stdout, "Try: REDIS_URL=%s %s queue status\nPress Ctrl-C to stop.\n", d.redis.URL, filepath.Join(d.bin, "enqueue"))
		<-ctx.Done()
	}
	fmt.Fprintln(stdout, "\nStopping the worker, the simulator and Redis.")
	return 0
}

type demo struct {
	ctx        context.Context
	bin        string
	examples   string
	out, errw  io.Writer
	dir        string
	redis      *throwawayRedis
	simAddr    string
	monitorURL string
	user       string
	password   string
	procs      []*exec.Cmd
	env        []string
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, "==> "+format+"\n", args...) }

func (d *demo) start(mode string, keep bool) error {
	dir, err := os.MkdirTemp("", "dyplsq-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	if d.redis, err = startRedis(mode, dir); err != nil {
		return err
	}
	d.say("%s", d.redis.notice)

	simPort, err := redisserver.FreePort()
	if err != nil {
		return err
	}
	d.simAddr = "127.0.0.1:" + strconv.Itoa(simPort)
	if err := d.spawn("dyplsim", []string{"--addr", d.simAddr, "--seed", "20", "--rand-seed", "1", "--qps", "200",
		"--faults", filepath.Join(d.examples, "demo-faults.json"), "--log-level", "warn"}, nil); err != nil {
		return err
	}
	if err := waitHTTP(d.ctx, "http://"+d.simAddr+"/_sim/health", 200, 15*time.Second); err != nil {
		return fmt.Errorf("simulator: %w (log: %s)", err, d.logPath("dyplsim"))
	}
	bindings, err := os.ReadFile(filepath.Join(d.examples, "demo-bindings.json"))
	if err != nil {
		return err
	}
	resp, err := http.Post("http://"+d.simAddr+"/_sim/bindings", "application/json", bytes.NewReader(bindings))
	if err != nil {
		return err
	}
	resp.Body.Close()
	d.say("Simulator (dyplsim) on http://%s: 20 sample bindings, a quota of 200 calls/s, faults from %s", d.simAddr, filepath.Join(d.examples, "demo-faults.json"))

	monPort, err := redisserver.FreePort()
	if err != nil {
		return err
	}
	d.monitorURL = "http://127.0.0.1:" + strconv.Itoa(monPort)
	d.user = "demo"
	var b [6]byte
	_, _ = rand.Read(b[:])
	d.password = hex.EncodeToString(b[:])
	d.env = []string{"REDIS_URL=" + d.redis.URL, "LOG_FORMAT=console"}
	workerEnv := append([]string{
		"DYPLS_ENDPOINT=http://" + d.simAddr,
		"ALIBABA_CLOUD_ACCESS_KEY_ID=testAccessKeyId", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=testAccessKeySecret",
		"MONITOR_ADDR=127.0.0.1:" + strconv.Itoa(monPort), "MONITOR_USER=" + d.user, "MONITOR_PASSWORD=" + d.password,
		"DYPLS_QPS=150", "DYPLS_TIMEOUT=3s", "LOG_LEVEL=info",
	}, d.env...)
	if err := d.spawn("worker", nil, workerEnv); err != nil {
		return err
	}
	if err := waitHTTP(d.ctx, d.monitorURL+"/readyz", 200, 20*time.Second); err != nil {
		return fmt.Errorf("worker: %w (log: %s)", err, d.logPath("worker"))
	}
	d.say("Worker serving dyplsq-live and dyplsq-bulk; its log is %s", d.logPath("worker"))
	return nil
}

// batch queues the sample and follows it to the end.
func (d *demo) batch() int {
	sample := filepath.Join(d.examples, "sample.csv")
	report := filepath.Join(d.dir, "report.csv")
	d.say("enqueue --wait --report %s %s", report, sample)
	code := d.cli("--wait", "--wait-timeout", "120s", "--report", report, sample)
	// 1 means rows ended dead: the sample has two on purpose.
	if code != 0 && code != 1 {
		fmt.Fprintf(d.errw, "demo: enqueue exited %d (worker log: %s)\n", code, d.logPath("worker"))
		return 1
	}
	if rep, err := os.ReadFile(report); err == nil {
		d.say("The report, one row per input row (phone numbers masked):")
		fmt.Fprint(d.out, string(rep))
	}
	d.say("enqueue dlq list")
	if code := d.cli("dlq", "list"); code != 0 {
		return 1
	}
	calls, err := d.simCalls()
	if err != nil {
		fmt.Fprintf(d.errw, "demo: simulator stats: %v\n", err)
		return 1
	}
	d.say("What the simulator answered to UpdateSubscription: %s", formatCalls(calls))
	return d.check(report, calls)
}

// simCalls reads the simulator's UpdateSubscription answers by code.
func (d *demo) simCalls() (map[string]int, error) {
	resp, err := http.Get("http://" + d.simAddr + "/_sim/stats")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct{ Calls map[string]map[string]int }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return st.Calls["UpdateSubscription"], nil
}

func formatCalls(calls map[string]int) string {
	codes := make([]string, 0, len(calls))
	for c := range calls {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s %d", c, calls[c]))
	}
	return strings.Join(parts, ", ")
}

// check compares the report with what the sample's _note column promises.
func (d *demo) check(report string, calls map[string]int) int {
	rep, err := os.ReadFile(report)
	if err != nil {
		fmt.Fprintf(d.errw, "demo: %v\n", err)
		return 1
	}
	text := string(rep)
	var missing []string
	for _, want := range []string{"applied", "superseded", "dead", "isv.BIND_CONFLICT", "isv.SUBS_NOT_EXIST"} {
		if !strings.Contains(text, want) {
			missing = append(missing, want)
		}
	}
	// The throttled and transient rows met their scripted answers first.
	if calls["isv.FLOW_LIMIT"] < 2 {
		missing = append(missing, "two throttled answers (isv.FLOW_LIMIT)")
	}
	if calls["isp.SYSTEM_ERROR"] < 2 {
		missing = append(missing, "transient answers (isp.SYSTEM_ERROR)")
	}
	if len(missing) > 0 {
		fmt.Fprintf(d.errw, "demo: the report lacks %s (worker log: %s)\n", strings.Join(missing, ", "), d.logPath("worker"))
		return 1
	}
	d.say("Every row ended as examples/sample.csv says: applied, superseded, throttled then applied, transient then applied, and dead.")
	return 0
}

func (d *demo) cli(args ...string) int {
	cmd := exec.CommandContext(d.ctx, filepath.Join(d.bin, "enqueue"), args...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		fmt.Fprintf(d.errw, "demo: enqueue: %v\n", err)
		return 2
	}
}

func (d *demo) logPath(name string) string { return filepath.Join(d.dir, name+".log") }

func (d *demo) spawn(name string, args, env []string) error {
	logf, err := os.Create(d.logPath(name))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.bin, name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	d.procs = append(d.procs, cmd)
	return nil
}

// cleanup stops every process the demo started, newest first, and Redis.
func (d *demo) cleanup() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	if d.redis != nil {
		d.redis.stop()
	}
	if d.dir != "" && os.Getenv("DEMO_KEEP_DIR") == "" {
		_ = os.RemoveAll(d.dir)
	}
}

func waitHTTP(ctx context.Context, url string, status int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %s", url, timeout, last)
}
