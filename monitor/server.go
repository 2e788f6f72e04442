package monitor

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// RootPath is where the asynq web UI is mounted.
const RootPath = "/monitoring"

// Server serves the UI, the metrics and the probes on one address.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	handler http.Handler
	page    *page
	closers []func() error // what New opened and Shutdown closes
	stop    chan struct{}  // closed by Shutdown: stops the page's sampling

	mu        sync.Mutex
	srv       *http.Server
	closeOnce sync.Once
}

// New checks cfg and builds the server without listening yet. It refuses a
// non-loopback Addr unless User and Password are set.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With().Str("component", "monitor").Logger(), stop: make(chan struct{})}
	shared, isShared := cfg.RedisConnOpt.(SharedRedis)
	if isShared && shared.Client == nil {
		return nil, errors.New("monitor: SharedRedis has no client")
	}

	ui, err := newUI(asynqmon.Options{
		RootPath:         RootPath,
		RedisConnOpt:     cfg.RedisConnOpt,
		PayloadFormatter: PayloadFormatter{},
		ResultFormatter:  ResultFormatter{},
		ReadOnly:         cfg.ReadOnly,
	})
	if err != nil {
		return nil, err
	}
	// asynqmon's Close closes the client it got from RedisConnOpt: never
	// call it on a shared one.
	if !isShared {
		s.closers = append(s.closers, ui.Close)
	}

	insp := cfg.Inspector
	switch {
	case insp != nil:
	case isShared:
		insp = asynq.NewInspectorFromRedisClient(shared.Client)
	default:
		insp = asynq.NewInspector(cfg.RedisConnOpt)
		s.closers = append(s.closers, insp.Close)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := registerQueueMetrics(reg, insp); err != nil {
		s.close()
		return nil, fmt.Errorf("monitor: register asynq queue metrics: %w", err)
	}

	rdb, err := s.pageRedis(shared, isShared)
	if err != nil {
		s.close()
		return nil, err
	}
	s.page = newPage(rdb, insp, cfg.KeyPrefix, reg, s.log)
	s.handler = s.routes(ui, metricsHandler(reg, s.log))
	return s, nil
}

// pageRedis returns the client the dyplsq page reads: the shared one, or
// one of its own on RedisConnOpt, which Shutdown closes.
func (s *Server) pageRedis(shared SharedRedis, isShared bool) (redis.UniversalClient, error) {
	if isShared {
		return shared.Client, nil
	}
	rdb, ok := s.cfg.RedisConnOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("monitor: RedisConnOpt does not make a go-redis client")
	}
	s.closers = append(s.closers, rdb.Close)
	return rdb, nil
}

// newUI builds the asynqmon handler, turning its panics on bad options
// into errors.
func newUI(opts asynqmon.Options) (ui *asynqmon.HTTPHandler, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("monitor: %v", r)
		}
	}()
	return asynqmon.New(opts), nil
}

// routes lays out the URL space; everything but the probes sits behind
// basic auth when credentials are configured, and /readyz gives its detail
// only to callers with them.
func (s *Server) routes(ui, metrics http.Handler) http.Handler {
	private := http.NewServeMux()
	private.Handle(RootPath+"/", uiHandler(ui, s.cfg.ReadOnly))
	private.Handle("GET /metrics", metrics)
	private.Handle("GET "+PagePath+"{$}", s.page)
	private.Handle("GET /{$}", http.RedirectHandler(PagePath, http.StatusFound))

	var guarded http.Handler = private
	var authorized func(*http.Request) bool
	if s.cfg.User != "" {
		guarded = basicAuth(s.cfg.User, s.cfg.Password, private)
		authorized = credentials(s.cfg.User, s.cfg.Password)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz(s.cfg.Ready, authorized))
	mux.Handle("/", guarded)
	return mux
}

// uiHandler routes the UI's JSON API through the read-only guard and the
// masking filter; pages and static assets go to asynqmon directly.
func uiHandler(ui http.Handler, readOnly bool) http.Handler {
	api := maskAPI(ui)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != RootPath+"/api" && !strings.HasPrefix(r.URL.Path, RootPath+"/api/") {
			ui.ServeHTTP(w, r)
			return
		}
		// asynqmon enforces ReadOnly as well; this guard also covers the
		// routes its middleware does not see.
		if readOnly && r.Method != http.MethodGet {
			http.Error(w, "monitor is read-only: "+r.Method+" is not allowed", http.StatusMethodNotAllowed)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// Handler returns the server's whole HTTP handler, auth included.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on Config.Addr and serves in the background. It returns
// the bound address, which differs from Addr when Addr asks for port 0.
func (s *Server) Start() (addr string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", errors.New("monitor: already started")
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return "", fmt.Errorf("MONITOR_ADDR %s: %w", s.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(s.log, "", 0),
	}
	s.srv = srv
	go s.page.run(s.stop)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("monitor stopped serving")
		}
	}()
	addr = l.Addr().String()
	s.log.Info().Str("addr", addr).Bool("auth", s.cfg.User != "").Bool("read_only", s.cfg.ReadOnly).
		Msg("monitor listening: " + PagePath + ", " + RootPath + "/, /metrics, /healthz, /readyz")
	return addr, nil
}

// Shutdown stops serving, waiting for open requests until ctx ends, and
// closes the Redis connections New opened (never a [SharedRedis] client or
// a Config.Inspector).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	s.close()
	return err
}

func (s *Server) close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		for _, c := range s.closers {
			if err := c(); err != nil {
				s.log.Warn().Err(err).Msg("monitor: close")
			}
		}
	})
}
