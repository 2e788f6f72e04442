package dyplsim

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

// Two UpdateSubscription calls for one binding at once are recorded as an
// overlap; calls one after the other, or for different bindings, are not.
func TestOverlapsRecorded(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var applied []Applied
	sim, addr := startSim(t, Config{Seed: 3, RandSeed: 5, OnApply: func(a Applied) {
		mu.Lock()
		applied = append(applied, a)
		mu.Unlock()
	}})
	c1, c2 := newClient(t, addr), newClient(t, addr)
	call := func(c *dyplsapi.Client, i int, out string) {
		t.Helper()
		if resp, err := c.UpdateSubscription(outIDReq(i, out)); err != nil || resp.Code != "OK" {
			t.Errorf("update %d %s: %v %+v", i, out, err, resp)
		}
	}
	// One after the other on binding 1, concurrently on bindings 2 and 3.
	call(c1, 1, "a")
	call(c2, 1, "b")
	var wg sync.WaitGroup
	wg.Go(func() { call(c1, 2, "c") })
	wg.Go(func() { call(c2, 3, "d") })
	wg.Wait()
	if o := sim.Stats().Overlaps; len(o) != 0 {
		t.Fatalf("overlaps %v, want none", o)
	}

	// Two at once on binding 2: the first is held by a latency fault.
	sim.AddFault(FaultRule{Action: "UpdateSubscription", Params: map[string]string{"OutId": "slow"}, Kind: FaultLatency, Delay: 300 * time.Millisecond})
	wg.Go(func() { call(c1, 2, "slow") })
	time.Sleep(100 * time.Millisecond)
	call(c2, 2, "fast")
	wg.Wait()
	st := sim.Stats()
	id := SeedBinding(2).SubsId
	if len(st.Overlaps) != 1 || st.Overlaps[id] != 2 {
		t.Fatalf("overlaps %v, want {%s: 2}", st.Overlaps, id)
	}
	// The slow call applied last: the binding holds it, and OnApply saw
	// the order.
	mu.Lock()
	var order []string
	for _, a := range applied {
		if a.SubsId == id {
			order = append(order, a.OperateType+"="+a.Value)
		}
	}
	mu.Unlock()
	if got := fmt.Sprint(order); got != "[updateOutId=c updateOutId=fast updateOutId=slow]" {
		t.Fatalf("applied on %s: %s", id, got)
	}
	sim.Reset()
	if o := sim.Stats().Overlaps; len(o) != 0 {
		t.Fatalf("overlaps after Reset: %v", o)
	}
}
