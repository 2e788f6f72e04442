package api

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
)

// Server is the HTTP API. Build it with [New], then [Server.Start] it, or
// mount [Server.Handler] yourself.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	auth    *authenticator
	limits  *limiters
	metrics *metrics
	client  *asynq.Client
	insp    *asynq.Inspector
	batches *batch.Store
	dead    *deadletter.Store
	handler http.Handler

	mu  sync.Mutex
	srv *http.Server
}

// New checks cfg and builds a Server. It registers the request metrics on
// cfg.Registry.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "api").Logger(),
		auth:    newAuthenticator(cfg.Tokens),
		limits:  newLimiters(cfg.Rate, cfg.Burst),
		metrics: m,
		client:  asynq.NewClientFromRedisClient(cfg.Redis),
		insp:    asynq.NewInspectorFromRedisClient(cfg.Redis),
		batches: &batch.Store{Redis: cfg.Redis, Prefix: cfg.KeyPrefix, TTL: cfg.BatchWindow},
		dead:    &deadletter.Store{Redis: cfg.Redis, Prefix: cfg.KeyPrefix},
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the API's handler, with authentication, rate limits,
// request logs and metrics.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/updates", s.protect(http.HandlerFunc(s.postUpdates)))
	mux.Handle("GET /v1/updates/{taskId}", s.protect(http.HandlerFunc(s.getUpdate)))
	mux.Handle("GET /v1/batches/{batchId}", s.protect(http.HandlerFunc(s.getBatch)))
	mux.HandleFunc("GET /v1/openapi.json", serveDocument)
	mux.HandleFunc("/", notFound)
	return s.observe(mux)
}

// Start listens on cfg.Addr and serves in the background (HTTPS when a
// certificate is configured). It returns the address listened on.
func (s *Server) Start() (string, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          httpErrorLog(s.log),
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return "", err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("API server stopped")
		}
	}()
	return ln.Addr().String(), nil
}

// Shutdown stops accepting requests and waits for those in flight until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	_ = s.client.Close()
	return err
}

// notFound answers every path and method the API does not serve.
func notFound(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/updates":
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST on /v1/updates", nil)
	case hasPrefix(r.URL.Path, "/v1/updates/"), hasPrefix(r.URL.Path, "/v1/batches/"), r.URL.Path == "/v1/openapi.json":
		w.Header().Set("Allow", "GET")
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			writeError(w, http.StatusNotFound, "not_found", "no such route", nil)
			return
		}
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET here", nil)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such route: see /v1/openapi.json", nil)
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
