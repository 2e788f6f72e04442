package bench

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// requireRedisServer fails the test when redis-server is missing: these
// tests measure against a real, private Redis and never skip.
func requireRedisServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed or not in PATH: the bench tests start a private redis-server (apt-get install redis-server)")
	}
}

// privateEnv starts a private redis-server and returns an Env on it.
func privateEnv(t *testing.T, n int) *Env {
	t.Helper()
	requireRedisServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := startRedisServer(ctx, "redis-server")
	if err != nil {
		t.Fatalf("start private redis-server: %v", err)
	}
	t.Cleanup(srv.Close)
	env := &Env{
		N:       n,
		Redis:   redis.NewClient(&redis.Options{Addr: srv.Addr}),
		Addr:    srv.Addr,
		Stderr:  testWriter{t},
		connOpt: asynq.RedisClientOpt{Addr: srv.Addr},
		private: true,
	}
	t.Cleanup(func() { env.Redis.Close() })
	return env
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestEveryScenarioWithTinyN(t *testing.T) {
	const n = 200
	env := privateEnv(t, n)
	all := scenarios()
	if err := validate(all); err != nil {
		t.Fatal(err)
	}
	var rows []row
	for _, sc := range all {
		res, err := runOnce(context.Background(), env, sc)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		if !(res.Value > 0) || res.Count != n || res.Elapsed <= 0 {
			t.Fatalf("%s: got %+v, want a positive figure over %d items", sc.Name, res, n)
		}
		rows = append(rows, row{Scenario: sc, Values: []float64{res.Value}})
	}
	var table bytes.Buffer
	if err := renderTable(&table, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 2+len(all) {
		t.Fatalf("table has %d lines, want %d:\n%s", len(lines), 2+len(all), table.String())
	}
	for i, sc := range all {
		if !strings.HasPrefix(lines[2+i], "| `"+sc.Name+"` |") || strings.Contains(lines[2+i], "error") {
			t.Errorf("row %d = %q, want scenario %s with figures", i, lines[2+i], sc.Name)
		}
	}
}

func TestRunPrintsAndWritesTableAndStopsRedis(t *testing.T) {
	requireRedisServer(t)
	out := filepath.Join(t.TempDir(), "bench.md")
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"-n", "200", "-reps", "2", "-out", out}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("run = %d, want 0; stderr:\n%s", code, stderr.String())
	}
	for _, sc := range scenarios() {
		re := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(sc.Name) + "` \\|[^|]*\\|[^|]*\\| [0-9,.]+ \\| [0-9,.]+ \\| [0-9,.]+ \\| 2 \\|")
		if !re.MatchString(stdout.String()) {
			t.Errorf("no row with figures for %s in:\n%s", sc.Name, stdout.String())
		}
	}
	// Extra figures get rows of their own, compared with the baseline's
	// row of the same name.
	for _, want := range []string{
		"| `dyplsq/worker/c50/redis-cpu` |", "× `naive/worker/c50/redis-cpu` |",
		"| `dyplsq/worker/c50/process-cpu` |", "× `naive/worker/c50/process-cpu` |",
		"| `naive/worker/c50/redis-cmds` |",
		"| `dyplsq/latency/r200/p50` |", "× `naive/latency/r200/p50` |",
		"| `dyplsq/latency/r200/idle-redis-cmds` |",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("no %q in:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stdout.String(), "| scenario | figure | unit | median | min | max | reps | ratio to baseline |") {
		t.Errorf("no table header in:\n%s", stdout.String())
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, stdout.Bytes()) {
		t.Errorf("-out file differs from stdout:\n%s", file)
	}

	m := regexp.MustCompile(`private redis-server on (\S+) `).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("stderr does not name the private redis-server:\n%s", stderr.String())
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("private redis-server on %s still accepts connections after run", m[1])
	}
}

func TestRatioToBaseline(t *testing.T) {
	env := privateEnv(t, 10)
	fixed := func(v float64) func(context.Context, *Env) (Result, error) {
		return func(context.Context, *Env) (Result, error) {
			return Result{Value: v, Count: 10, Elapsed: time.Second}, nil
		}
	}
	all := []Scenario{
		{Name: "base", Group: "g", Figure: "base", Unit: "tasks/s", Run: fixed(200)},
		{Name: "ours", Group: "g", Figure: "ours", Unit: "tasks/s", Baseline: "base", Run: fixed(100)},
		{Name: "other", Group: "h", Figure: "other", Unit: "ms", Run: fixed(1)},
	}
	if err := validate(all); err != nil {
		t.Fatal(err)
	}
	sel, err := selectScenarios(all, "ours")
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 2 || sel[0].Name != "base" || sel[1].Name != "ours" {
		t.Fatalf("selecting ours gave %v, want its baseline too", names(sel))
	}
	rows, aborted := runAll(context.Background(), env, sel, 3)
	if aborted != nil {
		t.Fatal(aborted)
	}
	var table bytes.Buffer
	if err := renderTable(&table, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| `ours` | ours | tasks/s | 100 | 100 | 100 | 3 | 0.50× `base` |") {
		t.Errorf("no ratio 0.50 for ours in:\n%s", table.String())
	}
}

func TestFailingScenarioIsReported(t *testing.T) {
	env := privateEnv(t, 10)
	sc := Scenario{Name: "broken", Unit: "tasks/s", Figure: "fails",
		Run: func(context.Context, *Env) (Result, error) { return Result{}, errors.New("boom | bang") }}
	rows, aborted := runAll(context.Background(), env, []Scenario{sc}, 3)
	if aborted != nil {
		t.Fatal(aborted)
	}
	var table bytes.Buffer
	if err := renderTable(&table, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), `error: rep 1: boom \| bang`) {
		t.Errorf("error not shown in:\n%s", table.String())
	}
}

func TestSelectAndValidate(t *testing.T) {
	all := scenarios()
	for pattern, want := range map[string]int{"": len(all), "asynq/enqueue": 3, "dyplsim/sdk": 2, "dyplsq/worker/c50": 3, "dyplsq/limiter": 1, "asynq/*/c50": 1, "asynq/drain/c10,asynq/enqueue/g1": 2} {
		sel, err := selectScenarios(all, pattern)
		if err != nil || len(sel) != want {
			t.Errorf("selectScenarios(%q) = %v, %v; want %d scenarios", pattern, names(sel), err, want)
		}
	}
	if _, err := selectScenarios(all, "nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
	run := func(context.Context, *Env) (Result, error) { return Result{}, nil }
	if err := validate([]Scenario{{Name: "a", Unit: "x", Run: run}, {Name: "a", Unit: "x", Run: run}}); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := validate([]Scenario{{Name: "a", Unit: "x", Baseline: "b", Run: run}}); err == nil {
		t.Error("unknown baseline accepted")
	}
	if err := validate([]Scenario{{Name: "a", Unit: "x", Run: run}, {Name: "b", Unit: "y", Baseline: "a", Run: run}}); err == nil {
		t.Error("baseline with another unit accepted")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-reps", "0"}, {"-scenarios", "nope"}, {"extra"}, {"-bogus"}} {
		var stdout, stderr bytes.Buffer
		if code := Run(context.Background(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("Run(%q) = %d, want %d; stderr: %s", args, code, exitUsage, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"-list"}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "asynq/drain/c200") {
		t.Errorf("-list = %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	if code := Run(context.Background(), []string{"-redis-server", "/nonexistent/redis-server"}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "redis-server is not installed") {
		t.Errorf("missing redis-server = %d: %s", code, stderr.String())
	}
}

func TestSummarizeAndFormat(t *testing.T) {
	if s, _ := summarize([]float64{3, 1, 2}); s != (summary{2, 1, 3}) {
		t.Errorf("odd: %+v", s)
	}
	if s, _ := summarize([]float64{4, 1, 2, 3}); s != (summary{2.5, 1, 4}) {
		t.Errorf("even: %+v", s)
	}
	if _, ok := summarize(nil); ok {
		t.Error("empty summarized")
	}
	for v, want := range map[float64]string{84712.4: "84,712", 1234567: "1,234,567", 559: "559", 59.04: "59.0", 6.333: "6.33"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestPayloadIsRealistic(t *testing.T) {
	env := &Env{}
	p := env.Payloads(3)
	if len(p) != 3 || bytes.Equal(p[0], p[1]) {
		t.Fatalf("payloads not distinct: %q", p)
	}
	if n := len(p[2]); n < 280 || n > 340 {
		t.Errorf("payload is %d bytes, want about 300: %s", n, p[2])
	}
	for _, key := range []string{`"PoolKey":"FC100000000000001"`, `"OperateType":"updateNoA"`, `"SubsId":"1000000000000003"`, `"_meta":{`} {
		if !bytes.Contains(p[2], []byte(key)) {
			t.Errorf("payload lacks %s: %s", key, p[2])
		}
	}
}

func names(s []Scenario) []string {
	var out []string
	for _, sc := range s {
		out = append(out, sc.Name)
	}
	return out
}
