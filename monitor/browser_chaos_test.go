//go:build chaos

package monitor_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/enqueuecli"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/monitor"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// Numbers that sit in clear in the dead jobs' payloads in Redis and must
// reach the browser only masked.
const (
	conflictA   = "13812345678" // updateNoA that the API refuses with isv.BIND_CONFLICT
	conflictAM  = "138****5678"
	missingB    = "13912345678" // updateNoB of a binding that does not exist
	missingBM   = "139****5678"
	browserUser = "ops"
	browserPass = "browser-test-pass"
)

// TestChaosBrowserUI drives the monitoring UI in headless Chromium against
// a real worker: a real Redis, the simulator behind the real SDK, and the
// monitor server wired as cmd/worker wires it. Without credentials the UI
// is refused; with them (an Authorization header, never in the URL) the
// dashboard lists both queues with the counts the inspector reports, and
// the archived-task page of the live queue shows the dead jobs with their
// error codes and phone numbers masked. It leaves a screenshot of that
// page in TEST_ARTIFACTS, or in the test's temporary directory.
func TestChaosBrowserUI(t *testing.T) {
	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Second)
	defer cancel()

	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	live, bulk := ns+"-live", ns+"-bulk"
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { cleanupRedis(rdb, insp, ns, live, bulk) })

	sim, simSrv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 10, RandSeed: 1}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(); simSrv.Close() })
	api, err := dypls.New(dypls.Config{Endpoint: "http://" + simAddr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)

	logs := &lockedBuffer{}
	log := zerolog.New(logs).With().Timestamp().Logger()
	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{
		Queues:                   map[string]int{live: 6, bulk: 1},
		Concurrency:              4,
		MaxAttempts:              2,
		BackoffBase:              20 * time.Millisecond,
		BackoffMax:               200 * time.Millisecond,
		ThrottleDelay:            100 * time.Millisecond,
		SweepInterval:            500 * time.Millisecond,
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		KeyPrefix:                ns,
		WorkerID:                 ns,
		Logger:                   log,
		Registry:                 reg,
	}, rdb, api)
	if err != nil {
		t.Fatal(err)
	}
	// The monitor exactly as cmd/worker builds it, on a free loopback port.
	mon, err := monitor.New(monitor.Config{
		Addr:         "127.0.0.1:0",
		User:         browserUser,
		Password:     browserPass,
		ReadOnly:     true,
		RedisConnOpt: monitor.SharedRedis{Client: rdb},
		Registry:     reg,
		Inspector:    w.Inspector(),
		Ready:        w.Ready,
		KeyPrefix:    ns,
		Logger:       log,
	})
	if err != nil {
		t.Fatal(err)
	}
	monAddr, err := mon.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = mon.Shutdown(sctx)
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker and monitor logs:\n%s", logs.tail(8000))
		}
	})

	// The jobs: three applied and two dead on the live queue, two applied
	// on the bulk queue.
	sim.AddFault(dyplsim.FaultRule{SubsId: dyplsim.SeedBinding(4).SubsId, Kind: dyplsim.FaultCode,
		Code: "isv.BIND_CONFLICT", Message: "A " + conflictA + " already bound"})
	liveProd := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb, Queue: live, KeyPrefix: ns}
	bulkProd := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb, Queue: bulk, KeyPrefix: ns}
	enqueue := func(p *tasks.Producer, u tasks.Update) string {
		t.Helper()
		r, err := p.Enqueue(ctx, u)
		if err != nil {
			t.Fatalf("enqueue %s %s: %v", u.SubsId, u.OperateType, err)
		}
		return r.TaskID
	}
	noB := seedUpdate(1, "updateNoB")
	noB.PhoneNoB = "13900001111"
	outID := seedUpdate(2, "updateOutId")
	outID.OutId = "order-2"
	rec := seedUpdate(3, "updateIsRecordingEnabled")
	rec.IsRecordingEnabled = "true"
	conflict := seedUpdate(4, "updateNoA")
	conflict.PhoneNoA = conflictA
	missing := seedUpdate(9, "updateNoB")
	missing.SubsId = "1000000000000999" // no such binding: isv.SUBS_NOT_EXIST
	missing.PhoneNoB = missingB
	bulkNoB := seedUpdate(5, "updateNoB")
	bulkNoB.PhoneNoB = "13900005555"
	bulkOut := seedUpdate(6, "updateOutId")
	bulkOut.OutId = "order-6"

	applied := map[string]string{} // task id → queue
	for _, u := range []tasks.Update{noB, outID, rec} {
		applied[enqueue(liveProd, u)] = live
	}
	for _, u := range []tasks.Update{bulkNoB, bulkOut} {
		applied[enqueue(bulkProd, u)] = bulk
	}
	deadIDs := []string{enqueue(liveProd, conflict), enqueue(liveProd, missing)}

	// A batch of three rows through the enqueue CLI, to the bulk queue:
	// each row has its own task id, which the UI must show whole.
	var csv strings.Builder
	csv.WriteString("PoolKey,SubsId,PhoneNoX,OperateType,OutId\n")
	for _, i := range []int{7, 8, 10} {
		b := dyplsim.SeedBinding(i)
		fmt.Fprintf(&csv, "%s,%s,%s,updateOutId,batch-row-%d\n", b.PoolKey, b.SubsId, b.PhoneNoX, i)
	}
	redisURL := redistest.URL(t)
	var cliOut, cliErr bytes.Buffer
	if code := enqueuecli.Run(ctx, []string{"--queue", bulk, "-"}, func(k string) string {
		switch k {
		case "REDIS_URL":
			return redisURL
		case "DYPLSQ_KEY_PREFIX":
			return ns
		case "ENQUEUE_KEEP_FINISHED":
			return "1h" // the UI shows the batch's finished rows
		}
		return ""
	}, strings.NewReader(csv.String()), &cliOut, &cliErr); code != 0 {
		t.Fatalf("enqueue the batch: exit %d\n%s%s", code, cliOut.String(), cliErr.String())
	}
	m := regexp.MustCompile(`batch (b[a-z2-9]{16})`).FindStringSubmatch(cliOut.String())
	if m == nil {
		t.Fatalf("no batch id in the enqueue output:\n%s", cliOut.String())
	}
	var batchIDs []string
	for line := 2; line <= 4; line++ {
		id := batch.TaskID(m[1], line)
		batchIDs = append(batchIDs, id)
		applied[id] = bulk
	}
	if len(batchIDs) != 3 {
		t.Fatalf("the batch queued %d tasks, want 3: %q", len(batchIDs), batchIDs)
	}

	for id, q := range applied {
		waitTaskState(t, insp, q, id, 20*time.Second, asynq.TaskStateCompleted)
	}
	for _, id := range deadIDs {
		info := waitTaskState(t, insp, live, id, 20*time.Second, asynq.TaskStateArchived)
		// The payload in Redis holds the number in clear: masking it is
		// the UI's job, which is what this test checks.
		if p := string(info.Payload); !strings.Contains(p, conflictA) && !strings.Contains(p, missingB) {
			t.Fatalf("dead task %s: payload in Redis holds no full number, the masking check would prove nothing: %s", id, p)
		}
	}
	liveInfo, err := insp.GetQueueInfo(live)
	if err != nil {
		t.Fatal(err)
	}
	bulkInfo, err := insp.GetQueueInfo(bulk)
	if err != nil {
		t.Fatal(err)
	}
	if liveInfo.Archived != 2 || liveInfo.Completed != 3 || bulkInfo.Completed != 5 {
		t.Fatalf("queues before the browser: live archived %d completed %d, bulk completed %d; want 2, 3, 5",
			liveInfo.Archived, liveInfo.Completed, bulkInfo.Completed)
	}

	// The queues are new, so today's counts are exactly this test's jobs
	// (Size counts completed tasks too, as asynq 0.26 reports it).
	if liveInfo.Size != 5 || liveInfo.Processed != 5 || liveInfo.Failed != 2 ||
		bulkInfo.Size != 5 || bulkInfo.Processed != 5 || bulkInfo.Failed != 0 {
		t.Fatalf("inspector counts: live size %d processed %d failed %d, bulk size %d processed %d failed %d; want 5 5 2, 5 5 0",
			liveInfo.Size, liveInfo.Processed, liveInfo.Failed, bulkInfo.Size, bulkInfo.Processed, bulkInfo.Failed)
	}

	// The browser.
	artifacts := os.Getenv("TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	base := "http://" + monAddr
	bctx, chromeOut, netlog := startBrowser(t, ctx, chromium)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output:\n%s", chromeOut.tail(4000))
		}
	})

	// (a) Without credentials: the page and the API are refused. Headless
	// Chromium has no one to ask for a password, so it abandons a 401 with
	// a Basic challenge (net::ERR_INVALID_AUTH_CREDENTIALS) instead of
	// showing its body: the status comes from the network events.
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/healthz")); err != nil {
		t.Fatalf("open /healthz, which needs no credentials: %v", err)
	}
	netlog.reset()
	_, navErr := chromedp.Run(bctx, chromedp.NavigateResponse(base+"/monitoring/"))
	refused := netlog.response(base + "/monitoring/")
	switch {
	case refused.status == 0:
		t.Fatalf("open /monitoring/ without credentials: no response seen (navigation error: %v)", navErr)
	case refused.status != 401:
		t.Fatalf("GET /monitoring/ without credentials: HTTP %d, want 401 (navigation error: %v)", refused.status, navErr)
	case !strings.HasPrefix(refused.challenge, "Basic "):
		t.Errorf("401 without a Basic challenge: WWW-Authenticate %q", refused.challenge)
	}
	t.Logf("without credentials: GET /monitoring/ → HTTP %d, WWW-Authenticate %q; browser: %v", refused.status, refused.challenge, navErr)
	if p := pageNow(t, bctx); strings.Contains(p.Text, live) || strings.Contains(p.HTML, "FLAG_ROOT_PATH") {
		t.Fatalf("the UI rendered without credentials: %q", p.Text)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/healthz")); err != nil {
		t.Fatal(err)
	}
	// credentials "omit": with the default mode, headless Chromium holds a
	// fetch that meets a Basic challenge open, waiting for credentials no
	// one will type.
	fctx, fcancel := context.WithTimeout(bctx, 10*time.Second)
	apiStatus, err := chromedp.Run(fctx, chromedp.Evaluate[string](
		`fetch("/monitoring/api/queues", {cache: "no-store", credentials: "omit", signal: AbortSignal.timeout(8000)})
			.then(r => String(r.status), e => "error: " + e)`,
		chromedp.EvalAwaitPromise))
	fcancel()
	if err != nil {
		t.Fatalf("in-page fetch of /monitoring/api/queues: %v", err)
	}
	if apiStatus != "401" {
		t.Fatalf("in-page fetch of /monitoring/api/queues without credentials: %s, want 401", apiStatus)
	}

	// (b) With credentials in an Authorization header: the dashboard lists
	// both queues with the inspector's counts.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(browserUser+":"+browserPass))
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders,
		network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(base+"/monitoring/"))
	if err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	if resp.Status != 200 {
		t.Fatalf("GET /monitoring/ with credentials: HTTP %d %s, want 200", resp.Status, resp.StatusText)
	}
	for _, q := range []*asynq.QueueInfo{liveInfo, bulkInfo} {
		// Queue, State, Size, Memory usage, Latency, Processed, Failed, …
		want := map[int]string{0: q.Queue, 1: "run", 2: strconv.Itoa(q.Size),
			5: strconv.Itoa(q.Processed), 6: strconv.Itoa(q.Failed)}
		waitPage(t, bctx, 20*time.Second, "dashboard row of queue "+q.Queue+" with "+fmt.Sprint(want), func(p page) bool {
			row := p.Rows[q.Queue]
			for i, v := range want {
				if i >= len(row) || row[i] != v {
					return false
				}
			}
			return true
		})
	}
	saveScreenshot(t, bctx, artifacts, "dashboard")

	// (c) The archived tasks of the live queue: the dead jobs, their
	// codes, masked numbers, and no full number anywhere in the page.
	archived := base + "/monitoring/queues/" + live + "?status=archived"
	if err := chromedp.Do(bctx, chromedp.Navigate(archived)); err != nil {
		t.Fatalf("open %s: %v", archived, err)
	}
	wantText := []string{"isv.BIND_CONFLICT", "isv.SUBS_NOT_EXIST", conflictAM, missingBM, tasks.TypeUpdateSubscription}
	for _, id := range deadIDs {
		wantText = append(wantText, strings.SplitN(id, "-", 2)[0]) // the UI shows the id up to its first dash
	}
	p := waitPage(t, bctx, 20*time.Second, "archived tasks showing "+strings.Join(wantText, ", "), func(p page) bool {
		for _, s := range wantText {
			if !strings.Contains(p.Text, s) {
				return false
			}
		}
		return true
	})
	for _, full := range []string{conflictA, missingB} {
		if strings.Contains(p.Text, full) || strings.Contains(p.HTML, full) {
			t.Errorf("the archived-task page shows the full number %s", full)
		}
	}
	if !strings.Contains(p.Text, "Last Error") || !strings.Contains(p.Text, "Payload") {
		t.Errorf("not the archived-task table: %q", p.Text)
	}

	saveScreenshot(t, bctx, artifacts, "dead-letters")

	// (d) The completed tasks of the bulk queue: every row of the batch
	// shows its whole task id, so an operator tells the rows apart.
	completed := base + "/monitoring/queues/" + bulk + "?status=completed"
	if err := chromedp.Do(bctx, chromedp.Navigate(completed)); err != nil {
		t.Fatalf("open %s: %v", completed, err)
	}
	waitPage(t, bctx, 20*time.Second, "completed tasks showing the batch's task ids "+strings.Join(batchIDs, ", "), func(p page) bool {
		for _, id := range batchIDs {
			if !strings.Contains(p.Text, id) {
				return false
			}
		}
		return true
	})
	saveScreenshot(t, bctx, artifacts, "batch-rows")

	// (e) The dyplsq page: refused without credentials; with them, a batch
	// still running, the finished one, the dead letters by code with their
	// numbers masked, and a halted worker.
	running := batch.NewHasher("csv")
	_, _ = running.Write([]byte(ns + " running"))
	runningID := running.ID()
	bs := &batch.Store{Redis: rdb, Prefix: ns}
	if _, _, err := bs.Begin(ctx, batch.Info{ID: runningID, File: "running.csv", Format: "csv", Queue: bulk, Lines: 6, Rows: 5, ValidRows: 5}); err != nil {
		t.Fatal(err)
	}
	var entries []batch.Entry
	for line := 2; line <= 6; line++ {
		entries = append(entries, batch.Entry{Line: line, Outcome: batch.OutcomePending})
	}
	if _, err := bs.Record(ctx, runningID, entries); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := (&admin.Halts{Redis: rdb, Prefix: ns}).Report(ctx, admin.Halt{Worker: ns + "-halted", Host: "host-halted", PID: 4242,
		Code: "isv.ACCOUNT_ABNORMAL", Message: "account of 137****1111 is abnormal", Hint: worker.HaltHint("isv.ACCOUNT_ABNORMAL"),
		Since: now, UpdatedAt: now, NextProbe: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{}}); err != nil {
		t.Fatal(err)
	}
	netlog.reset()
	_, navErr = chromedp.Run(bctx, chromedp.NavigateResponse(base+monitor.PagePath))
	if r := netlog.response(base + monitor.PagePath); r.status != 401 {
		t.Fatalf("GET %s without credentials: HTTP %d, want 401 (navigation error: %v)", monitor.PagePath, r.status, navErr)
	}
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders,
		network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(base+monitor.PagePath)); err != nil {
		t.Fatalf("open %s: %v", monitor.PagePath, err)
	}
	wantPage := []string{runningID, "0 of 5 ended", m[1], "3 of 3 ended", "isv.BIND_CONFLICT", "isv.SUBS_NOT_EXIST",
		ns + "-halted", "isv.ACCOUNT_ABNORMAL", "137****1111", conflictAM}
	p = waitPage(t, bctx, 20*time.Second, "the dyplsq page showing "+strings.Join(wantPage, ", "), func(p page) bool {
		for _, s := range wantPage {
			if !strings.Contains(p.Text, s) {
				return false
			}
		}
		return true
	})
	if full := regexp.MustCompile(`(?:^|[^0-9])1[0-9]{10}(?:[^0-9]|$)`).FindString(p.HTML); full != "" {
		t.Errorf("the dyplsq page shows a whole number %s", full)
	}
	saveScreenshot(t, bctx, artifacts, "dyplsq")
}

// saveScreenshot writes a full-page PNG of the tab into dir and logs where.
func saveScreenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")) || len(shot) < 10<<10 {
		t.Fatalf("screenshot %s is not a PNG of a rendered page: %d bytes", name, len(shot))
	}
	path := filepath.Join(dir, t.Name()+"-"+name+".png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the %s page (%d bytes): %s", name, len(shot), path)
}

// chromiumPath finds Debian's chromium. The test never installs it: CI's
// .ci/run does when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed (/usr/bin/chromium, or chromium in PATH): the browser test needs it; install it with `apt-get install -y chromium` (.ci/run does this when it is missing)")
	return ""
}

// startBrowser starts headless Chromium with a fresh profile and returns a
// tab's context. Chromium resolves no host name and loads nothing but
// loopback URLs, so the UI's web-font links fail at once and no request
// leaves the machine.
func startBrowser(t *testing.T, ctx context.Context, execPath string) (context.Context, *lockedBuffer, *netLog) {
	t.Helper()
	out := &lockedBuffer{}
	// Chromium's shared-memory files go to TMPDIR (disable-dev-shm-usage)
	// and it does not always remove them: keep them in the test's own.
	tmp := t.TempDir()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(execPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(filepath.Join(tmp, "profile")),
		chromedp.Env("TMPDIR="+tmp),
		chromedp.WindowSize(1400, 1300), // tall enough for both dead jobs: the UI scrolls inside its own pane
		chromedp.CombinedOutput(out),
	)
	// Cleanups run last in, first out: the browser exits before the
	// profile directory made above is removed.
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v\n%s", execPath, err, out.tail(4000))
	}
	if _, err := chromedp.Call(bctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{
		{URLPattern: "http://127.0.0.1:*/*", Block: false},
		{URLPattern: "*://*:*/*", Block: true},
	}}); err != nil {
		t.Fatalf("block non-loopback URLs: %v", err)
	}
	nl := &netLog{}
	if err := chromedp.Listen(bctx, nl.record); err != nil {
		t.Fatal(err)
	}
	return bctx, out, nl
}

// netLog keeps the status and Basic challenge of the responses a tab
// receives, by URL.
type netLog struct {
	mu   sync.Mutex
	urls map[network.RequestID]string
	resp map[string]netResponse
}

type netResponse struct {
	status    int64
	challenge string
}

// record runs in the tab's event loop: it only files events.
func (n *netLog) record(ev any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.urls == nil {
		n.urls, n.resp = map[network.RequestID]string{}, map[string]netResponse{}
	}
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		n.urls[ev.RequestID] = ev.Request.URL
	case *network.EventResponseReceived:
		n.resp[ev.Response.URL] = netResponse{ev.Response.Status, headerValue(ev.Response.Headers, "WWW-Authenticate")}
	case *network.EventResponseReceivedExtraInfo:
		// Sent also for responses the browser abandons, which get no
		// responseReceived.
		if u, ok := n.urls[ev.RequestID]; ok {
			n.resp[u] = netResponse{ev.StatusCode, headerValue(ev.Headers, "WWW-Authenticate")}
		}
	}
}

func (n *netLog) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.urls, n.resp = nil, nil
}

func (n *netLog) response(url string) netResponse {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.resp[url]
}

// page is what the test reads of the current document.
type page struct {
	Text string              `json:"text"` // document.body.innerText
	HTML string              `json:"html"` // document.documentElement.outerHTML
	Root int                 `json:"root"` // elements the app rendered into #root
	Rows map[string][]string `json:"rows"` // table rows by the text of their first cell
}

const readPage = `(() => {
	const rows = {};
	for (const tr of document.querySelectorAll("tbody tr")) {
		const cells = [...tr.querySelectorAll("th, td")].map(c => c.innerText.trim());
		if (cells.length > 0) rows[cells[0]] = cells;
	}
	const root = document.getElementById("root");
	return {
		text: document.body ? document.body.innerText : "",
		html: document.documentElement ? document.documentElement.outerHTML : "",
		root: root ? root.childElementCount : 0,
		rows: rows,
	};
})()`

func pageNow(t *testing.T, ctx context.Context) page {
	t.Helper()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[page](readPage))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	return p
}

// waitPage reads the page until ok accepts it: the UI renders after its API
// calls return, and the dashboard refreshes every few seconds.
func waitPage(t *testing.T, ctx context.Context, timeout time.Duration, what string, ok func(page) bool) page {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := pageNow(t, ctx)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			text := p.Text
			if len(text) > 4000 {
				text = text[:4000] + "…"
			}
			t.Fatalf("after %s the page shows no %s; page text:\n%s", timeout, what, text)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// headerValue reads a response header whatever the case of its name.
func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

func seedUpdate(i int, op string) tasks.Update {
	b := dyplsim.SeedBinding(i)
	return tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: op}
}

// waitTaskState waits until the task is in state and returns its info.
func waitTaskState(t *testing.T, insp *asynq.Inspector, queue, id string, timeout time.Duration, state asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *asynq.TaskInfo
	var lastErr error
	for time.Now().Before(deadline) {
		info, err := insp.GetTaskInfo(queue, id)
		if err == nil && info.State == state {
			return info
		}
		last, lastErr = info, err
		time.Sleep(20 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("task %s in %s: state %v after %s, want %v (last error %q)", id, queue, last.State, timeout, state, last.LastErr)
	}
	t.Fatalf("task %s in %s: %v after %s", id, queue, lastErr, timeout)
	return nil
}

// cleanupRedis removes the test's queues and dyplsq keys from the shared
// Redis, as the worker tests do.
func cleanupRedis(rdb redis.UniversalClient, insp *asynq.Inspector, ns string, queues ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pats := []string{ns + ":*"}
	for _, q := range queues {
		// DeleteQueue leaves completed tasks and daily stats behind: the
		// scan below removes them.
		_, _ = insp.DeleteAllCompletedTasks(q)
		_ = insp.DeleteQueue(q, true)
		pats = append(pats, "asynq:{"+q+"}:*")
	}
	for _, pat := range pats {
		iter := rdb.Scan(ctx, 0, pat, 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	}
	for _, q := range queues {
		rdb.SRem(ctx, "asynq:queues", q)
	}
}

// lockedBuffer collects output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
