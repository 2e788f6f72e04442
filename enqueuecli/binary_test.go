package enqueuecli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/safebuf"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds the command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "enqueue-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "enqueue")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/enqueue").CombinedOutput()
		if err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v", binErr)
	}
	return binPath
}

// start runs the built binary with the harness's environment.
func (h *harness) start(stdin string, args ...string) (*exec.Cmd, *safebuf.Buffer, *safebuf.Buffer) {
	h.t.Helper()
	cmd := exec.Command(binary(h.t), h.withQueue(args)...)
	cmd.Env = h.env()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb safebuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	return cmd, &out, &errb
}

func wait(cmd *exec.Cmd, out, errb *safebuf.Buffer) result {
	err := cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = -int(ws.Signal())
		}
	} else if err != nil {
		code = -1
	}
	return result{code, out.String(), errb.String()}
}

func (h *harness) exec(stdin string, args ...string) result {
	h.t.Helper()
	cmd, out, errb := h.start(stdin, args...)
	return wait(cmd, out, errb)
}

func TestBinary(t *testing.T) {
	h := newHarness(t)

	r := h.exec("", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples") {
		t.Errorf("--help: %s", r)
	}
	r = h.exec("")
	if r.code != exitUsage || strings.TrimSpace(r.stderr) != "enqueue: no input file: give a CSV or JSON Lines file, or - for stdin (see enqueue --help)" {
		t.Errorf("no file: %s", r)
	}

	// Redis unreachable: exit 2, one line, no stack trace.
	cmd := exec.Command(binary(t), "--redis-timeout", "1s", h.write("a.csv", csvRows(2)))
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://127.0.0.1:1/0", "REDIS_CLUSTER_ADDRS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 ||
		!strings.Contains(stderr.String(), "cannot reach Redis at redis://127.0.0.1:1/0") {
		t.Errorf("unreachable Redis: %v\n%s", err, stderr.String())
	}

	// JSON Lines on stdin, and invalid rows.
	jl := `{"PoolKey":"FC1","SubsId":1000000000000001,"PhoneNoX":17000000000,"OperateType":"updateNoA","PhoneNoA":"13800000001"}` + "\n" +
		`{"PoolKey":"FC1","SubsId":"1000000000000002","PhoneNoX":"17000000001","OperateType":"updateNoA"}` + "\n"
	r = h.exec(jl, "-")
	if r.code != exitFailed {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "stdin:2: PhoneNoA: required when OperateType is updateNoA")
	r = h.exec(jl, "--skip-invalid", "-")
	if r.code != 0 || counts(t, r) != [5]int{2, 1, 1, 0, 1} {
		t.Fatalf("%s", r)
	}
}

// TestBinaryCrashAndInterrupt: SIGKILL mid-run, then SIGINT mid-run, then
// the same command completes the batch; every row is queued exactly once.
func TestBinaryCrashAndInterrupt(t *testing.T) {
	h := newHarness(t)
	const n = 20000
	p := h.write("big.csv", csvRows(n))
	waitQueued := func(min int) {
		deadline := time.Now().Add(30 * time.Second)
		for h.pending() < min && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
	cmd, out, errb := h.start("", "--max-pending", "0", "--concurrency", "2", p)
	waitQueued(1000)
	_ = cmd.Process.Kill()
	r := wait(cmd, out, errb)
	if r.code != -int(syscall.SIGKILL) {
		t.Fatalf("after SIGKILL: %s", r)
	}
	afterCrash := h.pending()

	cmd, out, errb = h.start("", "--max-pending", "0", "--concurrency", "2", p)
	waitQueued(afterCrash + 1000)
	_ = cmd.Process.Signal(os.Interrupt)
	r = wait(cmd, out, errb)
	if r.code != exitInterrupted {
		t.Fatalf("after SIGINT: %s", r)
	}
	mustContain(t, r, "stderr", "resuming batch", "interrupted", "run the same command again")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd = exec.CommandContext(ctx, binary(t), "--queue", h.queue, "--max-pending", "0", "--concurrency", "2", p)
	cmd.Env = h.env()
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if c := counts(t, result{stdout: string(b)}); c[2]+c[3] != n {
		t.Errorf("last run: %v", c)
	}
	ts := h.tasksIn()
	if len(ts) != n {
		t.Fatalf("%d tasks for %d rows", len(ts), n)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].u.Meta.Line != ts[i-1].u.Meta.Line+1 || ts[i].u.Meta.Version <= ts[i-1].u.Meta.Version {
			t.Fatalf("lines %d, %d: versions %d, %d", ts[i-1].u.Meta.Line, ts[i].u.Meta.Line, ts[i-1].u.Meta.Version, ts[i].u.Meta.Version)
		}
	}
	st, _ := h.store.Status(context.Background(), batchID(t, result{stdout: string(b)}))
	if st.Queued != n || st.State != "queued" {
		t.Errorf("record: %+v", st)
	}
}
