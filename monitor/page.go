package monitor

import (
	"bytes"
	"context"
	_ "embed"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/admin"
	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/mask"
)

// PagePath is where the dyplsq page is served: batches, dead letters by
// code, halted workers, the shared rate limit and a lookup by SubsId, read
// from dyplsq's own Redis records. It sits behind the same auth as the UI.
const PagePath = "/dyplsq/"

// Limits of one page view, so that a huge backlog cannot make it slow.
const (
	pageBatches     = 20     // newest batches shown
	pageDeadScan    = 10_000 // dead-letter records read to count by code
	pageLookupDead  = 10_000 // dead-letter records read for a SubsId lookup
	pageTimeout     = 5 * time.Second
	throttleSample  = 20 * time.Second // how often the call counters are sampled
	throttleKeep    = 16 * time.Minute // how long samples are kept
	throttleShort   = time.Minute
	throttleLong    = 15 * time.Minute
	defaultKeyStart = "dyplsq"
)

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" },
}).Parse(pageHTML))

// page serves [PagePath]. Every text it shows from Redis goes through
// [mask.Text] while the view is built; the template adds no data of its own.
type page struct {
	rdb     redis.UniversalClient
	insp    *asynq.Inspector
	prefix  string
	batches *batch.Store
	dead    *deadletter.Store
	halts   *admin.Halts
	metrics prometheus.Gatherer
	samples *callSamples
	log     zerolog.Logger
}

func newPage(rdb redis.UniversalClient, insp *asynq.Inspector, prefix string, g prometheus.Gatherer, log zerolog.Logger) *page {
	if prefix == "" {
		prefix = defaultKeyStart
	}
	p := &page{
		rdb: rdb, insp: insp, prefix: prefix, metrics: g, log: log,
		batches: &batch.Store{Redis: rdb, Prefix: prefix},
		dead:    &deadletter.Store{Redis: rdb, Prefix: prefix},
		halts:   &admin.Halts{Redis: rdb, Prefix: prefix},
		samples: &callSamples{keep: throttleKeep},
	}
	p.sample()
	return p
}

// sample records the call counters now.
func (p *page) sample() {
	if s, _, _, _ := limiterStats(p.metrics); !s.at.IsZero() {
		p.samples.add(s)
	}
}

// run samples the call counters until stop is closed.
func (p *page) run(stop <-chan struct{}) {
	t := time.NewTicker(throttleSample)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.sample()
		}
	}
}

// ServeHTTP renders the page. Each section that cannot be read says so
// and the others are still shown.
func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	v := view{Now: time.Now(), Monitoring: RootPath + "/", Self: PagePath}
	v.Batches, v.BatchErr = p.loadBatches(ctx)
	v.Dead, v.DeadErr = p.loadDead(ctx)
	v.Halts, v.HaltErr = p.loadHalts(ctx)
	v.Limiter, v.LimiterErr = p.loadLimiter(ctx)
	if subs := r.URL.Query().Get("subs"); subs != "" {
		v.Lookup = p.lookup(ctx, subs)
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, v); err != nil {
		p.log.Error().Err(err).Msg("dyplsq page not rendered")
		http.Error(w, "page not rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing on the page comes from elsewhere: no script, style or font
	// may be loaded from another origin.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// errText is an error as the page shows it: masked, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return mask.Text(err.Error())
}
