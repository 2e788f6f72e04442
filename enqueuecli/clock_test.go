package enqueuecli

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// TestQueueStatusHaltOfSkewedWorker: a halted worker whose clock is ten
// minutes off is still shown by queue status: a CLI whose clock is ten
// minutes fast sees the same.
func TestQueueStatusHaltOfSkewedWorker(t *testing.T) {
	for _, skew := range []time.Duration{-10 * time.Minute, 10 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			h := newHarness(t)
			sim, api := startSim(t, 3)
			sim.AddFault(dyplsim.FaultRule{Kind: dyplsim.FaultCode, Code: "isv.ACCOUNT_ABNORMAL", Message: "account abnormal"})
			w, err := worker.New(worker.Config{
				Queues: map[string]int{h.queue: 1}, Concurrency: 2, HaltWait: 200 * time.Millisecond,
				TaskCheckInterval: 20 * time.Millisecond, KeyPrefix: h.ns, WorkerID: h.ns + "-skewed",
				Logger: zerolog.Nop(), Now: func() time.Time { return time.Now().Add(skew) },
			}, h.rdb, api)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(w.Shutdown)
			h.run(h.write("a.csv", csvRows(1)))
			deadline := time.Now().Add(10 * time.Second)
			for !w.Halt().Halted {
				if time.Now().After(deadline) {
					t.Fatal("the worker never halted")
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The worker reports its halt every 2 s.
			var r result
			for {
				r = h.run("queue", "status", h.queue)
				if r.code == exitGaveUp || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if r.code != exitGaveUp || !strings.Contains(r.stdout, "isv.ACCOUNT_ABNORMAL") {
				t.Fatalf("queue status with a worker %v off halted: %s", skew, r)
			}
		})
	}
}
