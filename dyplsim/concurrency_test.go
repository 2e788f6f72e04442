package dyplsim

import (
	"fmt"
	"sync"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	const workers, rounds = 16, 30
	sim, addr := startSim(t, Config{Seed: workers, RandSeed: 3})
	clients := make([]*dyplsapi.Client, workers)
	for i := range clients {
		clients[i] = newClient(t, addr) // one SDK client per goroutine
	}

	// Each goroutine updates its own binding.
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			c, i := clients[g], g+1
			for n := range rounds {
				r := outIDReq(i, fmt.Sprintf("w%d-%d", g, n))
				if n%3 == 1 {
					r = updateReq(i, "updateNoB")
					r.PhoneNoB = fmt.Sprintf("137%04d%04d", g, n)
				}
				resp, err := c.UpdateSubscription(r)
				if err != nil || resp.Code != "OK" {
					errs <- fmt.Errorf("worker %d round %d: %v %+v", g, n, err, resp)
					return
				}
				if n%10 == 0 {
					q := dyplsapi.CreateQuerySubscriptionDetailRequest()
					q.PoolKey, q.SubsId, q.PhoneNoX = DefaultPoolKey, SeedBinding(i).SubsId, SeedBinding(i).PhoneNoX
					if resp, err := c.QuerySubscriptionDetail(q); err != nil || resp.Code != "OK" {
						errs <- fmt.Errorf("worker %d query: %v %+v", g, err, resp)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for g := range workers {
		b, _ := sim.Binding(SeedBinding(g + 1).SubsId)
		if want := fmt.Sprintf("w%d-%d", g, rounds-1); b.OutId != want {
			t.Errorf("binding %d OutId %q, want %q", g+1, b.OutId, want)
		}
		if want := fmt.Sprintf("137%04d%04d", g, 28); b.PhoneNoB != want {
			t.Errorf("binding %d PhoneNoB %q, want %q", g+1, b.PhoneNoB, want)
		}
	}
	if st := sim.Stats(); st.Applied != workers*rounds || st.Calls["UpdateSubscription"]["OK"] != workers*rounds {
		t.Errorf("stats %+v", st)
	}

	// All goroutines race to give the same number to bindings that share an
	// X: exactly one wins, the rest conflict.
	shared := "17099999999"
	subs := make([]string, workers)
	for g := range workers {
		subs[g] = sim.PutBinding(Binding{PhoneNoX: shared, PhoneNoA: fmt.Sprintf("1360000%04d", g), PhoneNoB: fmt.Sprintf("1350000%04d", g)}).SubsId
	}
	codes := make([]string, workers)
	start := make(chan struct{})
	for g := range workers {
		wg.Go(func() {
			r := updateReq(1, "updateNoA")
			r.SubsId, r.PhoneNoX, r.PhoneNoA = subs[g], shared, "13312345678"
			<-start
			resp, err := clients[g].UpdateSubscription(r)
			if err != nil {
				codes[g] = err.Error()
				return
			}
			codes[g] = resp.Code
		})
	}
	close(start)
	wg.Wait()
	ok, conflict := 0, 0
	for _, c := range codes {
		switch c {
		case "OK":
			ok++
		case "isv.BIND_CONFLICT":
			conflict++
		default:
			t.Errorf("unexpected answer %q", c)
		}
	}
	if ok != 1 || conflict != workers-1 {
		t.Fatalf("ok %d conflict %d: %v", ok, conflict, codes)
	}
}
