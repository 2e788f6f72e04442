package enqueuecli

import (
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dyplsim"
)

// TestQueueStatusShowsWorkers: queue status fails when a queue with jobs
// waiting has no live worker, and lists the live workers with their
// queues, concurrency and halt.
func TestQueueStatusShowsWorkers(t *testing.T) {
	h := newHarness(t)
	r := h.run(h.write("a.csv", csvRows(3)))
	if r.code != exitOK {
		t.Fatalf("%s", r)
	}
	id := batchID(t, r)
	r = h.run("queue", "status", h.queue)
	if r.code != exitGaveUp {
		t.Fatalf("no worker: %s", r)
	}
	mustContain(t, r, "stdout", "no live worker serves "+h.queue+", which has 3 jobs waiting")

	sim, api := startSim(t, 5)
	sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Kind: dyplsim.FaultCode, Code: "isv.ACCOUNT_ABNORMAL", Message: "account abnormal"})
	w := startWorker(t, h, api, h.queue)
	deadline := time.Now().Add(15 * time.Second)
	for !w.Halt().Halted && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // the halt report and a heartbeat
	r = h.run("queue", "status", h.queue)
	if r.code != exitGaveUp {
		t.Fatalf("halted: %s", r)
	}
	mustContain(t, r, "stdout", "WORKER", "HEARTBEAT", h.queue+":1", "halted: isv.ACCOUNT_ABNORMAL", "check the Alibaba Cloud account")
	if strings.Contains(r.stdout, "no live worker serves") {
		t.Fatalf("the queue has a worker: %s", r)
	}

	// The cause is fixed: queue probe resumes the worker at once (its next
	// probe is 5 s or more away), and the jobs run.
	sim.SetFaults(nil)
	r = h.run("queue", "probe", h.queue)
	if r.code != exitOK {
		t.Fatalf("probe: %s", r)
	}
	mustContain(t, r, "stdout", "asked 1 halted worker to probe now", "the probes succeeded")
	start := time.Now()
	r = h.run("batch", "status", "--wait", "--wait-timeout", "20s", id)
	if r.code != exitOK {
		t.Fatalf("after the probe: %s", r)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("the jobs took %s after the probe request", el)
	}
}
