// Package readme checks that every command README.md shows works as
// written: shell commands are run here against a private Redis, the
// simulator and a worker, or are run by CI (.ci/run), or are Docker
// commands, which the README says are not run.
package readme

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

// block is a fenced code block of the README.
type block struct {
	lang  string
	lines []string
}

func readmeBlocks(t *testing.T) []block {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []block
	var cur *block
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if cur == nil {
				cur = &block{lang: strings.TrimPrefix(line, "```")}
			} else {
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, line)
		}
	}
	return out
}

// commands joins continuation lines and drops comments and blank lines.
func commands(b block) []string {
	var out []string
	var acc string
	for _, l := range b.lines {
		if i := strings.Index(l, "  #"); i >= 0 {
			l = l[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, `\`) {
			acc += strings.TrimSuffix(l, `\`) + " "
			continue
		}
		l = acc + l
		acc = ""
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestReadmeCommands(t *testing.T) {
	root, _ := filepath.Abs("../..")
	ci, err := os.ReadFile(filepath.Join(root, ".ci/run"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../../cmd/...").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	red := redistest.Server(t)
	work := t.TempDir()
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "REDIS_URL="+red.URL())

	// The sample file shown under "Batch files" is the one the commands use.
	var sample []string
	var shell [][]string
	for _, b := range readmeBlocks(t) {
		switch b.lang {
		case "csv":
			sample = b.lines
		case "sh":
			shell = append(shell, commands(b))
		}
	}
	if len(sample) == 0 || len(shell) == 0 {
		t.Fatal("README has no csv sample or no sh blocks")
	}
	if err := os.WriteFile(filepath.Join(work, "updates.csv"), []byte(strings.Join(sample, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A simulator with the README's seed and a worker, as "Running it" starts them.
	simPort := redistest.FreePort(t)
	sim := exec.Command(filepath.Join(bin, "dyplsim"), "--seed", "100", "--addr", fmt.Sprintf("127.0.0.1:%d", simPort), "--log-level", "warn")
	var simLog bytes.Buffer
	sim.Stderr = &simLog
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Process.Kill(); _ = sim.Wait() })
	wk := exec.Command(filepath.Join(bin, "worker"), "--monitor-addr", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)))
	wk.Env = append(env, "ALIBABA_CLOUD_ACCESS_KEY_ID=testAccessKeyId", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=testAccessKeySecret",
		fmt.Sprintf("DYPLS_ENDPOINT=http://127.0.0.1:%d", simPort), "JOB_MAX_ATTEMPTS=2")
	var wkLog bytes.Buffer
	wk.Stderr = &wkLog
	if err := wk.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wk.Process.Signal(os.Interrupt); _ = wk.Wait() })

	// Exit statuses the README documents for its own examples.
	wantExit := map[string]int{
		"enqueue --wait --report result.csv updates.csv": 1, // the sample's last row ends dead, as the README says
	}
	ran := 0
	for _, cmds := range shell {
		for _, c := range cmds {
			switch {
			case strings.HasPrefix(c, "make "):
				if !strings.Contains(string(ci), c) {
					t.Errorf("README shows %q, but .ci/run does not run it", c)
				}
				continue
			case strings.HasPrefix(c, "docker"):
				continue // no Docker engine here: the README says so; CI validates the compose file
			case strings.HasPrefix(c, "go build"), strings.HasPrefix(c, "bin/"), strings.HasPrefix(c, "ALIBABA_CLOUD_"):
				// "Running it": checked by TestReadmeRunningIt.
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			cmd := exec.CommandContext(ctx, "bash", "-c", c)
			cmd.Dir, cmd.Env = work, env
			out, err := cmd.CombinedOutput()
			cancel()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			if code != wantExit[c] {
				t.Errorf("README command %q exited %d, want %d:\n%s\nworker log tail:\n%s", c, code, wantExit[c], out, tail(wkLog.String()))
			}
			ran++
		}
	}
	if ran < 10 {
		t.Fatalf("only %d README commands ran", ran)
	}
}

// TestReadmeRunningIt runs the "Running it" block as written, in a copy of
// the repository's commands: build into bin/, start the simulator, start
// the worker, and see the worker start.
func TestReadmeRunningIt(t *testing.T) {
	var block []string
	for _, b := range readmeBlocks(t) {
		cs := commands(b)
		if b.lang == "sh" && len(cs) > 0 && strings.HasPrefix(cs[0], "go build -o bin/") {
			block = cs
		}
	}
	if len(block) != 3 {
		t.Fatalf("the Running it block changed: %q", block)
	}
	root, _ := filepath.Abs("../..")
	red := redistest.Server(t)
	// The block uses the default ports 8086 and 8080; run it with the
	// worker in the background and stop both after it has started.
	script := strings.Join([]string{
		"set -e", block[0], block[1],
		block[2] + " > worker.log 2>&1 &",
		"for i in $(seq 1 100); do grep -q 'worker started' worker.log && break; sleep 0.1; done",
		"kill %1 %2 || true", "wait || true", "grep 'worker started' worker.log",
	}, "\n")
	dir := t.TempDir()
	cmd := exec.Command("bash", "-c", "cd "+root+" && "+strings.ReplaceAll(script, "worker.log", filepath.Join(dir, "worker.log")))
	cmd.Env = append(os.Environ(), "REDIS_URL="+red.URL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "worker.log"))
		t.Fatalf("the Running it block failed: %v\n%s\nworker log:\n%s", err, out, log)
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
