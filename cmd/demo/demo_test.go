package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo as make demo does, with a local redis-server and
// with the in-memory Redis a machine without one gets.
func TestDemo(t *testing.T) {
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", bin+"/", "../dyplsim", "../worker", "../enqueue").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, mode := range []string{"server", "memory"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"--bin", bin, "--redis", mode, "--examples", filepath.Join("..", "..", "examples")},
				func(string) string { return "" }, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			o := stdout.String()
			for _, want := range []string{"applied", "superseded", "isv.BIND_CONFLICT", "isv.SUBS_NOT_EXIST", "isv.FLOW_LIMIT", "isp.SYSTEM_ERROR",
				"2 of 2 matching dead letters", "Every row ended as examples/sample.csv says"} {
				if !strings.Contains(o, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if mode == "memory" && !strings.Contains(o, "in-memory Redis") {
				t.Errorf("no in-memory notice")
			}
			for _, full := range []string{"13800009001", "13800007777", "13900009999"} {
				if strings.Contains(o, full) {
					t.Errorf("output shows the full number %s", full)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s", o)
			}
		})
	}
}
