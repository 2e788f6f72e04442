package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
)

// sdkMaxCalls caps the calls of one dyplsim/sdk repetition (min(-n, cap)):
// a few seconds each on 2 cores.
const sdkMaxCalls = 50000

// dyplsimSDKScenarios measures the simulator's throughput with the real
// Alibaba Cloud SDK as its client: G goroutines, each with its own SDK
// client, calling UpdateSubscription (updateOutId) on distinct seeded
// bindings. Client and simulator run in this one process and share the
// machine's cores (with Redis idle).
func dyplsimSDKScenarios() []Scenario {
	var out []Scenario
	for _, g := range []int{8, 32} {
		out = append(out, Scenario{
			Name:    fmt.Sprintf("dyplsim/sdk/g%d", g),
			Group:   "dyplsim/sdk",
			Figure:  fmt.Sprintf("dyplsim UpdateSubscription via the real SDK, %d goroutines, a client each (sim in-process)", g),
			Unit:    "calls/s",
			Timeout: 90 * time.Second,
			Run: func(ctx context.Context, env *Env) (Result, error) {
				return runSimSDK(ctx, env, g)
			},
		})
	}
	return out
}

// newSDKClients creates g SDK clients on addr one after the other (the
// SDK's client creation races on a package-level map), as dypls does:
// plain HTTP, no SDK retry, the bench call timeout.
func newSDKClients(addr string, g int) ([]*dyplsapi.Client, error) {
	cred := credentials.NewAccessKeyCredential(dyplsim.DefaultAccessKeyID, dyplsim.DefaultAccessKeySecret)
	clients := make([]*dyplsapi.Client, 0, g)
	for range g {
		c, err := dyplsapi.NewClientWithOptions(dypls.DefaultRegion, sdk.NewConfig().WithScheme("HTTP").WithAutoRetry(false), cred)
		if err != nil {
			for _, c := range clients {
				c.Shutdown()
			}
			return nil, fmt.Errorf("create SDK client: %w", err)
		}
		c.Domain = addr
		c.SetReadTimeout(simCallTimeout)
		c.SetConnectTimeout(simCallTimeout)
		clients = append(clients, c)
	}
	return clients, nil
}

// runSimSDK times min(N, sdkMaxCalls) calls from the first to the last
// return (client creation is not timed; each client's first connection is)
// and checks that every one was answered OK and applied.
func runSimSDK(ctx context.Context, env *Env, g int) (Result, error) {
	calls := min(env.N, sdkMaxCalls)
	sim, addr, stopSim, err := startSim(dyplsim.Config{Seed: calls})
	if err != nil {
		return Result{}, err
	}
	defer stopSim()
	clients, err := newSDKClients(addr, g)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		for _, c := range clients {
			c.Shutdown()
		}
	}()

	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start, cpu0 := time.Now(), processCPU()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > calls || ctx.Err() != nil {
					return
				}
				b := dyplsim.SeedBinding(i)
				req := dyplsapi.CreateUpdateSubscriptionRequest()
				req.PoolKey, req.SubsId, req.PhoneNoX = b.PoolKey, b.SubsId, b.PhoneNoX
				req.OperateType, req.OutId = "updateOutId", "bench-"+strconv.Itoa(i)
				resp, err := c.UpdateSubscription(req)
				if err == nil && resp.Code != "OK" {
					err = fmt.Errorf("code %s: %s", resp.Code, resp.Message)
				}
				if err != nil {
					errOnce.Do(func() { firstEr = fmt.Errorf("call %d: %w", i, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	if firstEr != nil {
		return Result{}, firstEr
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if st := sim.Stats(); st.Applied != calls {
		return Result{}, fmt.Errorf("simulator applied %d of %d calls (%v)", st.Applied, calls, st.Calls)
	}
	if cpu > 0 {
		env.Logf("%-22s %d calls: %.0f µs of CPU per call (SDK client and simulator together, this process)",
			fmt.Sprintf("dyplsim/sdk/g%d", g), calls, float64(cpu.Microseconds())/float64(calls))
	}
	return Rate(calls, elapsed), nil
}
