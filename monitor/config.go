// Package monitor is the worker's HTTP surface: the dyplsq page under
// /dyplsq/ (batches, dead letters by code, halted workers, the shared rate
// limit, a lookup by SubsId; where / leads), the asynq web UI (asynqmon)
// under /monitoring/, Prometheus metrics at /metrics, and the /healthz and
// /readyz probes.
//
// Phone numbers never leave it in clear: task payloads and results go
// through [PayloadFormatter] and [ResultFormatter], the dyplsq page masks
// every text it reads from Redis, and every response of
// the UI's JSON API (error messages included, which asynqmon shows as
// stored) passes through [mask.Text] before it is written. With User and
// Password set, every route but the probes asks for HTTP basic auth;
// without them, [New] refuses any address that is not loopback. /readyz
// answers anyone, but tells the detail of a failure (a halt's message may
// hold the AccessKeyId, the PoolKey and a SubsId) only to callers with
// those credentials: others get a short reason such as
// "halted: isv.ACCOUNT_ABNORMAL" (see [PublicReasoner]).
package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// DefaultAddr is the address served when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:8080"

// Config configures a [Server].
type Config struct {
	// Addr is the TCP address to listen on (MONITOR_ADDR); "" means
	// [DefaultAddr]. Port 0 picks a free port (see [Server.Start]).
	Addr string
	// User and Password (MONITOR_USER, MONITOR_PASSWORD) turn on HTTP basic
	// auth for every route except /healthz and /readyz. Both or neither
	// must be set; with neither, Addr must be a loopback address.
	User, Password string
	// ReadOnly (MONITOR_READONLY) makes the UI view-only: its API refuses
	// every method but GET.
	ReadOnly bool
	// RedisConnOpt is the Redis the UI reads. Use [SharedRedis] to reuse
	// the process's go-redis client instead of opening another pool.
	RedisConnOpt asynq.RedisConnOpt
	// Registry is served at /metrics; New adds asynq's queue series to it.
	// nil means a fresh registry holding only those.
	Registry *prometheus.Registry
	// Inspector feeds the asynq queue series. nil means one built on
	// RedisConnOpt (and closed by Shutdown).
	Inspector *asynq.Inspector
	// Ready reports readiness for /readyz: nil error means ready. A nil
	// Ready means always ready. Callers without the monitor's credentials
	// see only the reason of an error implementing [PublicReasoner] (a bare
	// "not ready" otherwise); callers with them see the whole error.
	Ready func(ctx context.Context) error
	// KeyPrefix starts dyplsq's own Redis keys (DYPLSQ_KEY_PREFIX), which
	// the dyplsq page reads; "" means "dyplsq".
	KeyPrefix string
	// Logger receives the server's own log lines, which add
	// component=monitor: it should carry no component itself. Credentials
	// are never logged.
	Logger zerolog.Logger
}

// check fills defaults and rejects unsafe or incomplete configurations.
func (c *Config) check() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.RedisConnOpt == nil {
		return errors.New("monitor: RedisConnOpt is required")
	}
	return CheckAddr(c.Addr, c.User, c.Password)
}

// CheckAddr applies the rule for where the UI may listen: MONITOR_USER and
// MONITOR_PASSWORD go together, and without them only a loopback address
// is allowed. Commands call it while reading their settings, before they
// connect to anything.
func CheckAddr(addr, user, password string) error {
	if (user == "") != (password == "") {
		return errors.New("MONITOR_USER and MONITOR_PASSWORD must be set together")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("MONITOR_ADDR %s: %v", addr, err)
	}
	if user == "" && !isLoopback(host) {
		return fmt.Errorf("MONITOR_ADDR %s is not loopback: set MONITOR_USER and MONITOR_PASSWORD", addr)
	}
	return nil
}

// isLoopback reports whether host names only the loopback interface. An
// empty host means every interface, so it is not loopback; of the host
// names, only "localhost" is trusted.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
