package dyplsim

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSimUpdateSubscription measures UpdateSubscription calls per
// second through the real SDK, one client per goroutine, against a
// simulator without quota. Compare with BenchmarkSDKBaseline, the same load
// against a server that answers a constant body: the difference is the
// simulator's cost. Run both with
//
//	go test -run '^$' -bench 'SimUpdateSubscription|SDKBaseline' -benchtime 5s ./dyplsim/
func BenchmarkSimUpdateSubscription(b *testing.B) {
	const bindings = 1024
	sim, addr := startSim(b, Config{Seed: bindings, RandSeed: 1})
	n := benchUpdates(b, addr, bindings)
	if st := sim.Stats(); st.Applied != n {
		b.Errorf("applied %d of %d", st.Applied, n)
	}
}

// BenchmarkSDKBaseline is the SDK's own ceiling on this machine: the same
// calls against a handler that only writes a fixed OK body.
func BenchmarkSDKBaseline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"RequestId":"986BCB6D-C9BF-42F9-91CE-3A9901233D36","Code":"OK","Message":"OK"}`)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = contentTypeJSON
		w.Write(body)
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	benchUpdates(b, ln.Addr().String(), 1024)
}

// benchUpdates runs b.N updateOutId calls in parallel, one SDK client per
// goroutine, reports calls/s and returns b.N.
func benchUpdates(b *testing.B, addr string, bindings int) int {
	var next atomic.Int64
	b.SetParallelism(4) // 4 × GOMAXPROCS goroutines hide the loopback round trip
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		c := newClient(b, addr)
		n := 0
		for pb.Next() {
			i := int(next.Add(1)%int64(bindings)) + 1
			r := updateReq(i, "updateOutId")
			r.OutId = "bench-" + strconv.Itoa(n)
			resp, err := c.UpdateSubscription(r)
			if err != nil || resp.Code != "OK" {
				b.Errorf("UpdateSubscription: %v %v", err, resp)
				return
			}
			n++
		}
	})
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	// CPU time per call (client and server together) does not depend on
	// what else the machine runs: 2 cores / cpu-us/call is the ceiling on
	// a dedicated 2-core machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/call")
	return b.N
}

// processCPU returns the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeHTTPUpdate measures the simulator's own cost per
// UpdateSubscription: a signed request (as the SDK would send it) through
// ServeHTTP, without network or SDK. Signing each request on the client
// side is included.
func BenchmarkServeHTTPUpdate(b *testing.B) {
	sim, err := New(Config{Seed: 1, RandSeed: 1})
	if err != nil {
		b.Fatal(err)
	}
	base := rawParams("UpdateSubscription", "", time.Now())
	for k, v := range map[string]string{"PoolKey": DefaultPoolKey, "SubsId": SeedBinding(1).SubsId,
		"PhoneNoX": SeedBinding(1).PhoneNoX, "OperateType": "updateOutId", "OutId": "bench"} {
		base.Set(k, v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		base.Set("SignatureNonce", "nonce-"+strconv.Itoa(i))
		SignParams(http.MethodPost, base, DefaultAccessKeySecret)
		r := httptest.NewRequest(http.MethodPost, "/?"+base.Encode(), nil)
		w := httptest.NewRecorder()
		sim.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("HTTP %d %s", w.Code, w.Body)
		}
	}
}
