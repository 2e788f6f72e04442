package api

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/tasks"
)

// Defaults of a [Config].
const (
	// DefaultRate is the requests per second each token may make.
	DefaultRate = 20
	// DefaultBurst is how many requests a token may make at once.
	DefaultBurst = 40
	// DefaultMaxBodyBytes bounds a request body: 1,000 updates of about
	// 2 KB each.
	DefaultMaxBodyBytes = 2 << 20
	// MaxItems is the most updates one POST may carry.
	MaxItems = 1000
	// MinTokenLength is the shortest token API_TOKENS accepts.
	MinTokenLength = 16
)

// Token is one bearer token of API_TOKENS.
type Token struct {
	// Name names the token's holder in logs, metrics and batch records.
	Name string
	// Secret is the token itself; it is never logged.
	Secret string
}

// Config configures a [Server].
type Config struct {
	// Addr is the TCP address to listen on (API_ADDR). Port 0 picks a
	// free port (see [Server.Start]).
	Addr string
	// Tokens are the accepted bearer tokens; at least one is required.
	Tokens []Token
	// TLSCert and TLSKey (API_TLS_CERT, API_TLS_KEY) are PEM files; with
	// both set the server speaks HTTPS only.
	TLSCert, TLSKey string
	// Rate and Burst limit each token's requests (API_RATE, API_BURST);
	// zero means [DefaultRate] and [DefaultBurst].
	Rate  float64
	Burst int
	// MaxBodyBytes bounds a request body; zero means [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// LiveQueue and BulkQueue are the queues of ?queue=live (the default)
	// and ?queue=bulk; empty means tasks' default names.
	LiveQueue, BulkQueue string
	// KeyPrefix is the prefix of dyplsq's own Redis keys (the worker's
	// DYPLSQ_KEY_PREFIX); empty means tasks.DefaultKeyPrefix.
	KeyPrefix string
	// BatchWindow is how long a request's batch record, and so its
	// Idempotency-Key, is kept; zero means batch.DefaultTTL.
	BatchWindow time.Duration
	// Redis is where jobs, versions and records live. Required.
	Redis redis.UniversalClient
	// Registry receives the request metrics; nil keeps them unregistered.
	Registry prometheus.Registerer
	// Logger receives one line per request (component=api added here).
	Logger zerolog.Logger
	// Now returns the current time, for validation; default time.Now.
	Now func() time.Time
}

func (c *Config) check() error {
	if c.Redis == nil {
		return errors.New("api: Config.Redis is required")
	}
	if len(c.Tokens) == 0 {
		return errors.New("API_TOKENS is not set: the API needs at least one token (name:token)")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("API_TLS_CERT and API_TLS_KEY must be set together")
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.LiveQueue == "" {
		c.LiveQueue = tasks.DefaultLiveQueue
	}
	if c.BulkQueue == "" {
		c.BulkQueue = tasks.DefaultBulkQueue
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = tasks.DefaultKeyPrefix
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ParseTokens reads API_TOKENS: a comma-separated list of name:token,
// such as "shop:8c1f...,crm:77ab...". Names are letters, digits, '_', '.'
// and '-', unique; tokens are at least [MinTokenLength] characters of
// printable ASCII without spaces or commas, unique. Errors never quote a
// token.
func ParseTokens(s string) ([]Token, error) {
	var out []Token
	names := map[string]bool{}
	secrets := map[[32]byte]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, secret, ok := strings.Cut(part, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("API_TOKENS: entry %d has no name: want name:token,name:token", i+1)
		case !tokenName.MatchString(name):
			return nil, fmt.Errorf("API_TOKENS: entry %d: the name is not 1 to 64 letters, digits, '_', '.' or '-'", i+1)
		case names[name]:
			return nil, fmt.Errorf("API_TOKENS: name %s is given twice", name)
		case len(secret) < MinTokenLength:
			return nil, fmt.Errorf("API_TOKENS: the token of %s is shorter than %d characters", name, MinTokenLength)
		case !printable(secret):
			return nil, fmt.Errorf("API_TOKENS: the token of %s has a character that is not printable ASCII", name)
		}
		h := sha256.Sum256([]byte(secret))
		if secrets[h] {
			return nil, fmt.Errorf("API_TOKENS: the token of %s is also another name's token", name)
		}
		names[name], secrets[h] = true, true
		out = append(out, Token{Name: name, Secret: secret})
	}
	if len(out) == 0 {
		return nil, errors.New("API_TOKENS names no token: want name:token,name:token")
	}
	return out, nil
}

// printable reports whether s is printable ASCII without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
