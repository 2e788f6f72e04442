package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/api"
	"github.com/dyplsq/dyplsq/enqueuecli"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/tasks"
)

// TestBenchEnqueueRates measures, in one run on one private redis-server,
// the enqueue rate through the HTTP API (1,000-item requests from 8
// concurrent clients), through the enqueue CLI (a CSV file, in process)
// and through bare asynq Client.Enqueue from 8 goroutines. It prints the
// three rates; the figure in BENCHMARKS.md comes from
//
//	API_BENCH_ITEMS=80000 go test -run TestBenchEnqueueRates -v -count=1 ./api/
//
// Without API_BENCH_ITEMS it runs 16,000 items, so the code stays tested.
func TestBenchEnqueueRates(t *testing.T) {
	n := 16000
	if v := os.Getenv("API_BENCH_ITEMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 8000 || n%8000 != 0 {
			t.Fatalf("API_BENCH_ITEMS %q: want a multiple of 8000", v)
		}
	}
	red := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: red.Addr, PoolSize: 64})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	count := func(q string) int {
		qi, err := insp.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		return qi.Pending
	}

	apiRate := benchAPI(t, rdb, n)
	if got := count("bench-api"); got != n {
		t.Fatalf("API: %d pending, want %d", got, n)
	}

	csv := filepath.Join(t.TempDir(), "rows.csv")
	writeCSV(t, csv, n)
	var out, errb safebuf.Buffer
	start := time.Now()
	code := enqueuecli.Run(ctx, []string{"--queue", "bench-cli", "--new-queue", "--max-pending", "0", "--key-prefix", "bcli", csv},
		func(k string) string {
			if k == "REDIS_URL" {
				return red.URL()
			}
			return ""
		}, bytes.NewReader(nil), &out, &errb)
	cliRate := float64(n) / time.Since(start).Seconds()
	if code != 0 {
		t.Fatalf("CLI: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if count("bench-cli") != n {
		t.Fatalf("CLI: exit %d, %d pending\n%s%s", code, count("bench-cli"), out.String(), errb.String())
	}

	client := asynq.NewClientFromRedisClient(rdb)
	work := make(chan int)
	var wg sync.WaitGroup
	start = time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := fmt.Appendf(nil, `{"PoolKey":"FC100000000000001","SubsId":"%d","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13700000000"}`, 1_000_000_000_000_000+i)
				if _, err := client.Enqueue(asynq.NewTask(tasks.TypeUpdateSubscription, p), asynq.Queue("bench-asynq")); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	asynqRate := float64(n) / time.Since(start).Seconds()
	if count("bench-asynq") != n {
		t.Fatalf("asynq: %d pending", count("bench-asynq"))
	}
	t.Logf("enqueue rates, %d items each, one redis-server:", n)
	t.Logf("  HTTP API (1,000-item requests, 8 clients): %8.0f items/s (%.2f of bare asynq)", apiRate, apiRate/asynqRate)
	t.Logf("  enqueue CLI (CSV file):                    %8.0f rows/s  (%.2f of bare asynq)", cliRate, cliRate/asynqRate)
	t.Logf("  bare asynq Client.Enqueue, 8 goroutines:   %8.0f tasks/s", asynqRate)
}

// benchAPI posts n items as 1,000-item requests from 8 concurrent clients
// and returns items per second.
func benchAPI(t *testing.T, rdb redis.UniversalClient, n int) float64 {
	t.Helper()
	s, err := api.New(api.Config{Addr: "127.0.0.1:0", Tokens: []api.Token{{Name: "bench", Secret: token}}, Rate: 1e6, Burst: 1e6,
		LiveQueue: "bench-api", KeyPrefix: "bapi", Redis: rdb, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	bodies := make(chan []byte, n/api.MaxItems)
	for r := range n / api.MaxItems {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range api.MaxItems {
			if i > 0 {
				b.WriteByte(',')
			}
			k := r*api.MaxItems + i
			fmt.Fprintf(&b, `{"PoolKey":"FC100000000000001","SubsId":"%d","PhoneNoX":"170%08d","OperateType":"updateNoA","PhoneNoA":"137%08d"}`, 1_000_000_000_000_000+k, k, k)
		}
		b.WriteByte(']')
		bodies <- b.Bytes()
	}
	close(bodies)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range bodies {
				req, _ := http.NewRequest("POST", "http://"+addr+"/v1/updates", bytes.NewReader(b))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("POST: %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// writeCSV writes n valid rows for the CLI.
func writeCSV(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\n")
	for i := range n {
		fmt.Fprintf(w, "FC100000000000001,%d,170%08d,updateNoA,137%08d\n", 1_000_000_000_000_000+i, i, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
