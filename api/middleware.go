package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/dyplsq/dyplsq/mask"
)

// authenticator checks bearer tokens in constant time: every configured
// token is compared, each as a SHA-256 digest, so neither the position of a
// match nor the length of a token shows in the time taken.
type authenticator struct {
	names   []string
	digests [][32]byte
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{}
	for _, t := range tokens {
		a.names = append(a.names, t.Name)
		a.digests = append(a.digests, sha256.Sum256([]byte(t.Secret)))
	}
	return a
}

// name returns the name of the token r carries, or "" for none or a wrong
// one.
func (a *authenticator) name(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	found := -1
	for i := range a.digests {
		if subtle.ConstantTimeCompare(d[:], a.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return ""
	}
	return a.names[found]
}

// limiters holds one token bucket per token name.
type limiters struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	by    map[string]*rate.Limiter
}

func newLimiters(r float64, burst int) *limiters {
	return &limiters{rate: rate.Limit(r), burst: burst, by: map[string]*rate.Limiter{}}
}

// allow takes a request from name's bucket, or returns how long to wait.
func (l *limiters) allow(name string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	lim := l.by[name]
	if lim == nil {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.by[name] = lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// reqInfo is what the handlers tell the request log.
type reqInfo struct {
	token string
	items int
	batch string
	code  string
}

type infoKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// protect asks for a token and applies its rate limit.
func (s *Server) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := s.auth.name(r)
		if name == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dyplsq"`)
			fail(w, r, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)", nil)
			return
		}
		info(r).token = name
		if ok, wait := s.limits.allow(name, time.Now()); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			fail(w, r, http.StatusTooManyRequests, "rate_limited", "too many requests for this token: retry after the Retry-After seconds", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// observe logs every request (numbers masked, never a token) and counts it
// by route and status.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("Cache-Control", "no-store")
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		took := time.Since(start)
		st := strconv.Itoa(sw.status)
		s.metrics.requests.WithLabelValues(route, st).Inc()
		s.metrics.latency.WithLabelValues(route, st).Observe(took.Seconds())
		lvl := zerolog.InfoLevel
		if sw.status >= 500 {
			lvl = zerolog.ErrorLevel
		}
		ev := s.log.WithLevel(lvl).Str("method", r.Method).Str("path", mask.Text(r.URL.Path)).Str("route", route).
			Int("status", sw.status).Int64("duration_ms", took.Milliseconds()).Str("remote", r.RemoteAddr)
		if ri.token != "" {
			ev = ev.Str("token", ri.token)
		}
		if ri.items > 0 {
			ev = ev.Int("items", ri.items)
		}
		if ri.batch != "" {
			ev = ev.Str("batch", ri.batch)
		}
		if ri.code != "" {
			ev = ev.Str("error_code", ri.code)
		}
		ev.Msg("api request")
	})
}

// metrics are the API's request series.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dyplsq_http_requests_total",
			Help: "HTTP API requests by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dyplsq_http_request_duration_seconds",
			Help:    "HTTP API request latency by route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "status"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// errorBody is the one error shape of every response.
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []detail `json:"details,omitempty"`
}

// detail is one problem of one item.
type detail struct {
	Index  *int   `json:"index,omitempty"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"cannot encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError writes the error shape; message and reasons are masked.
func writeError(w http.ResponseWriter, status int, code, message string, details []detail) {
	for i := range details {
		details[i].Reason = mask.Text(details[i].Reason)
		details[i].Field = mask.Text(details[i].Field)
	}
	writeJSON(w, status, errorBody{Error: apiError{Code: code, Message: mask.Text(message), Details: details}})
}

// fail writes an error and tells the request log its code.
func fail(w http.ResponseWriter, r *http.Request, status int, code, message string, details []detail) {
	info(r).code = code
	writeError(w, status, code, message, details)
}

// httpErrorLog sends net/http's own messages (TLS handshake errors, say)
// to the logger at debug, masked.
func httpErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(maskedWriter{l}, "", 0)
}

type maskedWriter struct{ l zerolog.Logger }

func (m maskedWriter) Write(p []byte) (int, error) {
	m.l.Debug().Msg(mask.Text(strings.TrimSpace(string(p))))
	return len(p), nil
}
