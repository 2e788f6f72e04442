package api_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// httpExamples returns the bash blocks of the README's "Enqueueing over
// HTTP" section.
func httpExamples(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur []string
	in, inBlock := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "## "):
			in = l == "## Enqueueing over HTTP"
		case in && l == "```bash":
			inBlock, cur = true, nil
		case in && inBlock && l == "```":
			inBlock = false
			out = append(out, strings.Join(cur, "\n"))
		case inBlock:
			cur = append(cur, l)
		}
	}
	return out
}

// TestReadmeHTTPExamples runs the README's curl and Python examples as
// written against the API, a worker and the simulator (--seed 100, as in
// the README).
func TestReadmeHTTPExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: the README's HTTP examples need it", tool)
		}
	}
	blocks := httpExamples(t)
	if len(blocks) != 2 || !strings.Contains(blocks[0], "curl") || !strings.Contains(blocks[1], "python3 examples/python/enqueue.py") {
		t.Fatalf("the README's HTTP examples changed: %q", blocks)
	}
	e := newEnv(t, nil)
	e.startWorker()
	root, _ := filepath.Abs("..")
	run := func(script string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "DYPLSQ_API="+e.base, "DYPLSQ_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s\nfailed: %v\n%s", script, err, out)
		}
		return string(out)
	}
	out := run(blocks[0])
	if !strings.Contains(out, `"taskId"`) || !strings.Contains(out, `"state":"ended"`) || !strings.Contains(out, `"outcome":"applied"`) {
		t.Fatalf("curl example:\n%s", out)
	}
	if b, _ := e.sim.Binding("1000000000000003"); b.PhoneNoB != "13900000099" {
		t.Fatalf("the curl example's update was not applied: B is %s", b.PhoneNoB)
	}
	out = run(blocks[1])
	if strings.Count(out, ": applied OK") != 2 {
		t.Fatalf("Python example:\n%s", out)
	}
	// Run again: the same file queues nothing twice.
	out = run(blocks[1])
	if strings.Count(out, "(already queued)") != 2 {
		t.Fatalf("Python example, again:\n%s", out)
	}
	if n := e.queued(e.live); n != 3 {
		t.Fatalf("%d tasks queued, want 3", n)
	}
}
