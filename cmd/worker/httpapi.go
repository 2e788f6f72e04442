package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/api"
	"github.com/dyplsq/dyplsq/envflag"
	"github.com/dyplsq/dyplsq/tasks"
)

// apiSettings are the HTTP API's settings as read.
type apiSettings struct {
	addr, tokens, cert, key, live, bulk *string
	rate                                *float64
	burst                               *int
}

func addAPISettings(s *envflag.Set) apiSettings {
	return apiSettings{
		addr:   s.String("API_ADDR", "api-addr", "", "address of the HTTP API (POST /v1/updates, ...); empty: no API"),
		tokens: s.Secret("API_TOKENS", "api-tokens", "bearer tokens of the HTTP API: name:token,name:token (required with API_ADDR; tokens of 16+ characters)"),
		cert:   s.String("API_TLS_CERT", "api-tls-cert", "", "PEM certificate file: the API speaks HTTPS (with API_TLS_KEY)"),
		key:    s.String("API_TLS_KEY", "api-tls-key", "", "PEM private key file of API_TLS_CERT"),
		rate:   s.Float("API_RATE", "api-rate", api.DefaultRate, 0.001, "HTTP API requests per second per token"),
		burst:  s.Int("API_BURST", "api-burst", api.DefaultBurst, 1, "HTTP API requests a token may make at once"),
		live:   s.String("API_LIVE_QUEUE", "api-live-queue", tasks.DefaultLiveQueue, "queue of POST /v1/updates (?queue=live)"),
		bulk:   s.String("API_BULK_QUEUE", "api-bulk-queue", tasks.DefaultBulkQueue, "queue of POST /v1/updates?queue=bulk"),
	}
}

// config checks the settings; a nil Config means the API is off.
func (a apiSettings) config(keyPrefix string) (*api.Config, error) {
	if strings.TrimSpace(*a.addr) == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(*a.addr); err != nil {
		return nil, fmt.Errorf("API_ADDR (--api-addr) %s: %v", *a.addr, err)
	}
	if strings.TrimSpace(*a.tokens) == "" {
		return nil, errors.New("API_ADDR is set but API_TOKENS is not: the API needs at least one token (name:token)")
	}
	toks, err := api.ParseTokens(*a.tokens)
	if err != nil {
		return nil, err
	}
	if (*a.cert == "") != (*a.key == "") {
		return nil, errors.New("API_TLS_CERT and API_TLS_KEY must be set together")
	}
	for _, f := range []struct{ env, path string }{{"API_TLS_CERT", *a.cert}, {"API_TLS_KEY", *a.key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("%s: cannot read %s", f.env, f.path)
		}
	}
	return &api.Config{Addr: *a.addr, Tokens: toks, TLSCert: *a.cert, TLSKey: *a.key, Rate: *a.rate, Burst: *a.burst,
		LiveQueue: *a.live, BulkQueue: *a.bulk, KeyPrefix: keyPrefix}, nil
}

// startAPI starts the HTTP API when configured. Unless it returns an error,
// the stop it returns is not nil.
func startAPI(cfg *api.Config, rdb redis.UniversalClient, reg prometheus.Registerer, log zerolog.Logger) (func(context.Context), error) {
	if cfg == nil {
		return func(context.Context) {}, nil
	}
	c := *cfg
	c.Redis, c.Registry, c.Logger = rdb, reg, log
	srv, err := api.New(c)
	if err == nil {
		var addr string
		if addr, err = srv.Start(); err == nil {
			scheme := "http"
			if c.TLSCert != "" {
				scheme = "https"
			}
			log.Info().Str("component", "api").Str("api", scheme+"://"+addr+"/v1/").Int("tokens", len(c.Tokens)).Msg("HTTP API started")
			return func(ctx context.Context) { _ = srv.Shutdown(ctx) }, nil
		}
	}
	return nil, fmt.Errorf("API_ADDR %s: %s", cfg.Addr, err)
}
