package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoSDKInEnqueue keeps the Alibaba Cloud SDK out of the enqueue binary
// and of the packages that do not call the API: they mask with package mask
// and read error codes with package dypls/errclass, never through the
// client.
func TestNoSDKInEnqueue(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	const mod = "github.com/dyplsq/dyplsq/"
	pkgs := []string{mod + "cmd/enqueue", mod + "enqueuecli", mod + "batch", mod + "deadletter", mod + "monitor"}
	out, err := exec.Command(goTool, append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/aliyun/alibaba-cloud-sdk-go") {
			t.Errorf("%s is among the dependencies of %s", p, strings.Join(pkgs, " "))
		}
	}
}
