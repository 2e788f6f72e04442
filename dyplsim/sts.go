package dyplsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Defaults of the STS credentials the simulator hands out.
const (
	// DefaultSTSLifetime is how long handed-out STS credentials are
	// accepted, as long as an STS token typically lives.
	DefaultSTSLifetime = time.Hour
	// stsKeep is how long the gateway remembers expired STS credentials
	// (answering InvalidSecurityToken.Expired); later it knows them no
	// more (InvalidAccessKeyId.NotFound).
	stsKeep = time.Hour
	// stsPrincipal is the quota key shared by all STS credentials: quota
	// is per account, and every STS AccessKeyId belongs to the same one.
	stsPrincipal = "sts"
)

// STSState is what GET /_sim/sts answers: the settings of the credentials
// URI and counters, never a secret.
type STSState struct {
	// Lifetime is how long each set of credentials is accepted.
	Lifetime Duration `json:"Lifetime"`
	// ExpirationSkew is added to the Expiration the URI reports, as when
	// the client's clock is behind: the client believes the credentials
	// valid for that much longer than the gateway accepts them.
	ExpirationSkew Duration `json:"ExpirationSkew"`
	// Fail, when set, makes the URI answer FailStatus with this message
	// instead of credentials.
	Fail       string `json:"Fail,omitempty"`
	FailStatus int    `json:"FailStatus,omitempty"`
	Issued     int64  `json:"Issued"`  // sets of credentials made
	Served     int64  `json:"Served"`  // credentials URI answers with credentials
	Refused    int64  `json:"Refused"` // credentials URI answers with Fail
	Expired    int64  `json:"Expired"` // calls answered InvalidSecurityToken.Expired
}

// Duration is a time.Duration written in JSON as Go writes it ("1m30s").
type Duration time.Duration

// MarshalText writes the duration as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as "3s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// stsCred is one set of STS credentials.
type stsCred struct {
	id, secret, token string
	expires           time.Time
	sg                *signer
}

// stsIssuer hands out rotating STS credentials and remembers them for the
// gateway.
type stsIssuer struct {
	mu    sync.Mutex
	state STSState
	cur   *stsCred
	byID  map[string]*stsCred
}

func (t *stsIssuer) reset(lifetime time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if lifetime <= 0 {
		lifetime = DefaultSTSLifetime
	}
	t.state = STSState{Lifetime: Duration(lifetime)}
	t.cur, t.byID = nil, map[string]*stsCred{}
}

// current returns the credentials to hand out: the current set while more
// than a third of its life is left, else a new one.
func (t *stsIssuer) current(now time.Time) *stsCred {
	life := time.Duration(t.state.Lifetime)
	if t.cur != nil && t.cur.expires.Sub(now) > life/3 {
		return t.cur
	}
	for id, c := range t.byID {
		if now.Sub(c.expires) > stsKeep {
			delete(t.byID, id)
		}
	}
	t.state.Issued++
	c := &stsCred{id: "STS." + randHex(12), secret: randHex(16), token: "CAIS" + randHex(48), expires: now.Add(life)}
	c.sg = newSigner(c.secret)
	t.cur, t.byID[c.id] = c, c
	return c
}

// check is the gateway's verdict on an AccessKeyId it does not hold as a
// permanent key: the STS credentials' signer, or the answer to give.
func (t *stsIssuer) check(id, token string, now time.Time) (*signer, *gwVerdict) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.byID[id]
	switch {
	case c == nil:
		return nil, gwErr(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	case token == "":
		return nil, gwErr(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
	case token != c.token:
		return nil, gwErr(400, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey.")
	case !now.Before(c.expires):
		t.state.Expired++
		return nil, gwErr(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
	}
	return c.sg, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// STS returns the credentials URI's settings and counters.
func (s *Sim) STS() STSState {
	s.sts.mu.Lock()
	defer s.sts.mu.Unlock()
	return s.sts.state
}

// SetSTS changes the credentials URI: the lifetime of new credentials
// (0 keeps it), the skew of the Expiration it reports, and whether it
// fails (fail != "": it answers failStatus, default 500, with that text).
func (s *Sim) SetSTS(lifetime, skew time.Duration, fail string, failStatus int) STSState {
	s.sts.mu.Lock()
	defer s.sts.mu.Unlock()
	st := &s.sts.state
	if lifetime > 0 {
		st.Lifetime = Duration(lifetime)
	}
	st.ExpirationSkew = Duration(skew)
	st.Fail, st.FailStatus = fail, 0
	if fail != "" {
		st.FailStatus = defaultInt(failStatus, http.StatusInternalServerError)
	}
	return *st
}

// serveCredentials answers the credentials URI as ALIBABA_CLOUD_CREDENTIALS_URI
// expects: the current STS credentials with their Expiration (UTC,
// seconds), or the configured failure.
func (s *Sim) serveCredentials(w http.ResponseWriter, _ *http.Request) {
	now := s.clock()
	s.sts.mu.Lock()
	st := &s.sts.state
	if st.Fail != "" {
		st.Refused++
		status, msg := st.FailStatus, st.Fail
		s.sts.mu.Unlock()
		controlStatusJSON(w, status, map[string]string{"Code": "Failed", "Message": msg})
		return
	}
	c := s.sts.current(now)
	st.Served++
	reported := c.expires.Add(time.Duration(st.ExpirationSkew))
	s.sts.mu.Unlock()
	controlJSON(w, map[string]string{
		"Code":            "Success",
		"AccessKeyId":     c.id,
		"AccessKeySecret": c.secret,
		"SecurityToken":   c.token,
		"Expiration":      reported.UTC().Format(TimestampLayout),
		"LastUpdated":     now.UTC().Format(TimestampLayout),
	})
}

// putSTS changes any of Lifetime, ExpirationSkew, Fail and FailStatus.
func (s *Sim) putSTS(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Lifetime       *Duration `json:"Lifetime"`
		ExpirationSkew *Duration `json:"ExpirationSkew"`
		Fail           *string   `json:"Fail"`
		FailStatus     *int      `json:"FailStatus"`
	}
	if err := decodeStrict(r, &in); err != nil {
		controlError(w, http.StatusBadRequest, err.Error())
		return
	}
	cur := s.STS()
	life, skew, fail, status := time.Duration(cur.Lifetime), time.Duration(cur.ExpirationSkew), cur.Fail, cur.FailStatus
	if in.Lifetime != nil {
		life = time.Duration(*in.Lifetime)
	}
	if in.ExpirationSkew != nil {
		skew = time.Duration(*in.ExpirationSkew)
	}
	if in.Fail != nil {
		fail = *in.Fail
	}
	if in.FailStatus != nil {
		status = *in.FailStatus
	}
	if life <= 0 || skew < 0 || (status != 0 && (status < 400 || status > 599)) {
		controlError(w, http.StatusBadRequest, "Lifetime must be > 0, ExpirationSkew >= 0, FailStatus 400-599")
		return
	}
	st := s.SetSTS(life, skew, fail, status)
	s.log.Info().Stringer("lifetime", time.Duration(st.Lifetime)).Stringer("expiration_skew", time.Duration(st.ExpirationSkew)).
		Bool("failing", st.Fail != "").Msg("sts set")
	controlJSON(w, st)
}

func controlStatusJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// CredentialsURIOnlyEnv returns the environment under which the SDK's
// default credentials chain finds nothing but the credentials URI uri
// (nothing at all when uri is ""): no AccessKey, no OIDC role, no CLI
// profile, no credentials file (home is the HOME to use, an empty
// directory), no instance metadata. Tests set it to play the credentials
// URI against the simulator, e.g. with t.Setenv.
func CredentialsURIOnlyEnv(uri, home string) map[string]string {
	return map[string]string{
		"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "", "ALIBABA_CLOUD_SECURITY_TOKEN": "",
		"ALIBABA_CLOUD_ROLE_ARN": "", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "", "ALIBABA_CLOUD_OIDC_TOKEN_FILE": "",
		"ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true", "ALIBABA_CLOUD_PROFILE": "",
		"ALIBABA_CLOUD_CREDENTIALS_FILE": home + "/none", "HOME": home,
		"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "ALIBABA_CLOUD_CREDENTIALS_URI": uri,
	}
}
