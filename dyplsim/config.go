package dyplsim

import (
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Default account and pool values.
const (
	// DefaultAccessKeyID is the AccessKeyId accepted when Config.AccessKeys is empty.
	DefaultAccessKeyID = "testAccessKeyId"
	// DefaultAccessKeySecret is the secret of DefaultAccessKeyID.
	DefaultAccessKeySecret = "testAccessKeySecret"
	// DefaultPoolKey is the number pool that always exists. It owns every
	// X number of the form "170" + 8 digits.
	DefaultPoolKey = "FC100000000000001"
	// APIVersion is the only Version the simulator serves.
	APIVersion = "2017-05-25"
	// DateLayout is the layout of Expiration, ExpireDate and GmtCreate
	// (Beijing time).
	DateLayout = "2006-01-02 15:04:05"
	// TimestampLayout is the layout of the Timestamp parameter (UTC).
	TimestampLayout = "2006-01-02T15:04:05Z"
	// MaxClockSkew is how far a request Timestamp may be from the
	// simulator's clock, and how long a SignatureNonce is remembered.
	MaxClockSkew = 15 * time.Minute
	// DefaultNonceCapacity bounds the SignatureNonce memory.
	DefaultNonceCapacity = 1 << 20
)

// beijing is Asia/Shanghai without needing tzdata (no DST since 1991).
var beijing = time.FixedZone("CST", 8*3600)

// Config configures a Sim. The zero value is a working simulator with the
// default AccessKey, no quota, no latency and no bindings.
type Config struct {
	// AccessKeys maps AccessKeyId to AccessKeySecret. Empty means
	// {DefaultAccessKeyID: DefaultAccessKeySecret}.
	AccessKeys map[string]string

	// QPS is the UpdateSubscription token-bucket rate per AccessKeyId;
	// 0 means unlimited. The dyplsim binary defaults to 10000, the
	// documented per-account limit.
	QPS float64
	// Burst is the UpdateSubscription bucket size; 0 means max(1, QPS/10).
	Burst int
	// QueryQPS is the rate of the bucket shared by BindAxb,
	// QuerySubscriptionDetail and UnbindSubscription per AccessKeyId;
	// 0 means unlimited. The binary defaults to 5000.
	QueryQPS float64
	// QueryBurst is the size of that bucket; 0 means max(1, QueryQPS/10).
	QueryBurst int
	// ThrottleCode selects the answer to a call over quota: "" or
	// "Throttling.User" (also "Throttling", "Throttling.Api") is a gateway
	// error with HTTP status ThrottleStatus; a business code such as
	// "isv.FLOW_LIMIT" is an HTTP 200 body with that Code.
	ThrottleCode string
	// ThrottleStatus is the HTTP status of gateway throttling; 0 means 400.
	ThrottleStatus int

	// Latency is added to every API call, plus a uniformly random extra
	// delay in [0, Jitter).
	Latency, Jitter time.Duration
	// RandSeed seeds jitter, fault rates and generated ids (RequestId,
	// SubsId and X numbers chosen by BindAxb). 0 picks a random seed.
	RandSeed int64
	// Seed is the number of sample bindings to create; see the package
	// documentation for the scheme.
	Seed int
	// SameValueConflicts makes updateNoA/updateNoB answer isv.BIND_CONFLICT
	// when the binding already holds the new number (default: OK, no
	// change).
	SameValueConflicts bool
	// Faults are installed at start and again by Reset.
	Faults []FaultRule
	// NonceCapacity bounds how many SignatureNonce values are remembered;
	// 0 means DefaultNonceCapacity. Nonces are kept for MaxClockSkew, or
	// less once this many arrived within that window.
	NonceCapacity int
	// STSLifetime is how long the STS credentials that the credentials
	// URI (GET /_sim/credentials) hands out are accepted; 0 means
	// DefaultSTSLifetime. PUT /_sim/sts changes it.
	STSLifetime time.Duration
	// Clock returns the current time; nil means time.Now. It drives the
	// Timestamp check, expiry, and Expiration validation; quotas and
	// latency use real time.
	Clock func() time.Time
	// OnApply, when set, is called for every UpdateSubscription that takes
	// effect (answered OK, or applied before a fault hides the answer,
	// including a same-value update accepted without change). It is called
	// with the binding's lock held, so the calls for one binding come in
	// the order the updates were applied; it must be quick and must not
	// call back into the simulator.
	OnApply func(Applied)
	// Logger receives debug logs per call and info logs for control-plane
	// changes. The zero value logs nothing.
	Logger zerolog.Logger
}

func (c Config) tstatus() int { return defaultInt(c.ThrottleStatus, 400) }
func (c Config) ncap() int    { return defaultInt(c.NonceCapacity, DefaultNonceCapacity) }
func (c Config) businessThrottle() bool {
	return strings.HasPrefix(c.ThrottleCode, "isv.") || strings.HasPrefix(c.ThrottleCode, "isp.")
}

func (c Config) throttleCode() string {
	if c.ThrottleCode == "" {
		return "Throttling.User"
	}
	return c.ThrottleCode
}

func defaultInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func defaultBurst(qps float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(qps/10))
}

// Applied describes an UpdateSubscription that took effect, as
// Config.OnApply receives it.
type Applied struct {
	SubsId, OperateType string
	// Value is the parameter the OperateType sets (PhoneNoA for updateNoA,
	// Expiration for updateExpire, OutId for updateOutId, ...).
	Value string
	At    time.Time
}

// valueParam names the parameter each OperateType sets.
var valueParam = map[string]string{
	opUpdateNoA: "PhoneNoA", opUpdateNoB: "PhoneNoB", opUpdateExpire: "Expiration",
	opUpdateAxgGroup: "GroupId", opUpdateCallRestrict: "CallRestrict",
	opUpdateCallDisplayType: "CallDisplayType", opUpdateOutId: "OutId",
	opUpdateIsRecordingEnabled: "IsRecordingEnabled",
}
