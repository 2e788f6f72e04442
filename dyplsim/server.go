package dyplsim

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Sim is a Dyplsapi simulator. It is an http.Handler serving the API at
// "/" and the control plane under "/_sim/". All methods are safe for
// concurrent use.
type Sim struct {
	cfg     Config
	log     zerolog.Logger
	clock   func() time.Time
	signers map[string]*signer // by AccessKeyId; read-only after New
	nonces  *nonceStore
	quota   atomic.Pointer[quota] // read lock-free per call
	quotaMu sync.Mutex            // serialises quota changes
	ids     idGen
	st      state
	faults  faultSet
	stats   stats
	sts     stsIssuer

	rngMu sync.Mutex
	pcg   *rand.PCG
	rng   *rand.Rand // jitter and fault rates, under rngMu

	mux *http.ServeMux // control plane and 404s

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a simulator configured by cfg, seeded with cfg.Seed sample
// bindings. It returns an error if cfg.Faults holds an invalid rule.
func New(cfg Config) (*Sim, error) {
	if len(cfg.AccessKeys) == 0 {
		cfg.AccessKeys = map[string]string{DefaultAccessKeyID: DefaultAccessKeySecret}
	} else {
		cfg.AccessKeys = maps.Clone(cfg.AccessKeys)
	}
	if cfg.RandSeed == 0 {
		cfg.RandSeed = rand.Int64()
	}
	cfg.Faults = append([]FaultRule(nil), cfg.Faults...)
	for i, r := range cfg.Faults {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("dyplsim: fault rule %d: %w", i, err)
		}
	}
	s := &Sim{
		cfg:     cfg,
		log:     cfg.Logger,
		clock:   cfg.Clock,
		signers: make(map[string]*signer, len(cfg.AccessKeys)),
		nonces:  newNonceStore(cfg.ncap(), MaxClockSkew),
		closed:  make(chan struct{}),
		pcg:     rand.NewPCG(0, 0),
	}
	s.rng = rand.New(s.pcg)
	s.mux = s.controlMux()
	if s.clock == nil {
		s.clock = time.Now
	}
	for id, secret := range cfg.AccessKeys {
		s.signers[id] = newSigner(secret)
	}
	s.Reset()
	return s, nil
}

// Start creates a simulator, listens on addr ("127.0.0.1:0" picks a free
// port) and serves in the background. It returns the simulator, the server
// (stop it with Shutdown or Close) and the actual host:port, which is what
// the SDK client's Domain should be set to.
func Start(cfg Config, addr string) (*Sim, *http.Server, string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s, err := New(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, "", fmt.Errorf("dyplsim: listen: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(logWriter{s.log}, "", 0),
	}
	srv.RegisterOnShutdown(s.Close)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("serve")
		}
	}()
	return s, srv, ln.Addr().String(), nil
}

// logWriter sends net/http server errors to the debug log.
type logWriter struct{ l zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Close releases calls that are waiting in a hang, latency or jitter; they
// end with the connection closed. Later waits end at once. Close does not
// stop any server; Start arranges for http.Server.Shutdown to call it.
func (s *Sim) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Reset restores the simulator to its state after New: bindings (re-seeded
// when Config.Seed > 0), Config.Faults, quotas from Config, empty stats,
// nonces and buckets, and the random sequences of RandSeed.
func (s *Sim) Reset() {
	now := s.clock()
	seed := uint64(s.cfg.RandSeed)
	s.st.mu.Lock()
	s.st.init(seed)
	s.st.seedBindings(s.cfg.Seed, now)
	s.st.mu.Unlock()
	s.rngMu.Lock()
	s.pcg.Seed(seed, 0xfa17)
	s.rngMu.Unlock()
	s.ids.reset(splitmix64(seed))
	s.faults.set(s.cfg.Faults)
	s.stats.init()
	s.sts.reset(s.cfg.STSLifetime)
	s.nonces.reset()
	s.quotaMu.Lock()
	s.quota.Store(newQuota(s.signers, s.cfg.QPS, s.cfg.Burst, s.cfg.QueryQPS, s.cfg.QueryBurst))
	s.quotaMu.Unlock()
}

// SetQPS changes the UpdateSubscription quota (0 = unlimited; burst 0 =
// max(1, qps/10)). Buckets start full.
func (s *Sim) SetQPS(qps float64, burst int) {
	s.changeQuota(func(q *Quota) { q.QPS, q.Burst = qps, burst })
}

// changeQuota applies change to the current limits and installs new,
// full buckets.
func (s *Sim) changeQuota(change func(*Quota)) Quota {
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	q := s.Quota()
	change(&q)
	s.quota.Store(newQuota(s.signers, q.QPS, q.Burst, q.QueryQPS, q.QueryBurst))
	return s.Quota()
}

// RandSeed returns the seed in use (Config.RandSeed, or the one picked
// when it was 0), so that a run can be repeated.
func (s *Sim) RandSeed() int64 { return s.cfg.RandSeed }

// Quota reports the current limits (bursts with defaults applied).
func (s *Sim) Quota() Quota {
	q := s.quota.Load()
	return Quota{QPS: q.qps, Burst: q.burst, QueryQPS: q.qqps, QueryBurst: q.qburst}
}

// Quota is the control-plane view of the quotas.
type Quota struct {
	QPS        float64 `json:"QPS"`
	Burst      int     `json:"Burst"`
	QueryQPS   float64 `json:"QueryQPS"`
	QueryBurst int     `json:"QueryBurst"`
}

// PutBinding creates or replaces a binding and returns it as stored. An
// empty SubsId gets a fresh one, an empty PoolKey is DefaultPoolKey, an
// empty PhoneNoX is picked from the pool, an empty ExpireDate is one year
// ahead and an empty GmtCreate is now. The pool is created if needed and
// PhoneNoX registered as owned by it. Conflicts are not checked. It panics
// on a malformed ExpireDate, GmtCreate or GroupId; use TryPutBinding to get
// an error instead.
func (s *Sim) PutBinding(b Binding) Binding {
	out, err := s.TryPutBinding(b)
	if err != nil {
		panic("dyplsim: PutBinding: " + err.Error())
	}
	return out
}

// TryPutBinding is PutBinding returning an error for malformed fields.
func (s *Sim) TryPutBinding(b Binding) (Binding, error) {
	return s.st.put(b, s.clock())
}

// Binding returns the binding with the given SubsId.
func (s *Sim) Binding(subsID string) (Binding, bool) {
	return s.st.get(subsID, s.clock())
}

// Bindings returns every binding, ordered by SubsId.
func (s *Sim) Bindings() []Binding {
	return s.st.all(s.clock())
}

// DeleteBinding removes a binding and reports whether it existed.
func (s *Sim) DeleteBinding(subsID string) bool {
	return s.st.remove(subsID)
}

// SetFaults replaces all fault rules. It panics on an invalid rule (see
// FaultRule.Validate).
func (s *Sim) SetFaults(rules []FaultRule) {
	for _, r := range rules {
		mustValid(r)
	}
	s.faults.set(rules)
}

// AddFault appends a fault rule. It panics on an invalid rule.
func (s *Sim) AddFault(rule FaultRule) {
	mustValid(rule)
	s.faults.add(rule)
}

// Faults returns the rules with their counters.
func (s *Sim) Faults() []FaultState { return s.faults.list() }

func mustValid(r FaultRule) {
	if err := r.Validate(); err != nil {
		panic("dyplsim: " + err.Error())
	}
}

// Stats returns the call counters.
func (s *Sim) Stats() Stats { return s.stats.snapshot() }

// ServeHTTP serves the API at "/" and the control plane under "/_sim/".
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		s.serveAPI(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// call carries one API call through the pipeline.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	q      *apiRequest
	reqID  string
	action string
	xml    bool // Format=XML: answer in XML
	acs3   bool // signed with ACS3-HMAC-SHA256 (action and version in headers)
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	q := getAPIRequest()
	defer putAPIRequest(q)
	c := &call{w: w, r: r, q: q, reqID: s.ids.next()}

	if err := q.parse(r); err != nil {
		s.gatewayError(c, &gwError{400, "InvalidParameter", "The request parameters are malformed: " + err.Error()})
		return
	}
	// ACS3 requests carry an Authorization header; the V1 SDK sends
	// x-acs-action too, but signs in the query (Signature).
	c.acs3 = r.Header.Get("Authorization") != "" || (!q.has("Signature") && r.Header.Get("x-acs-action") != "")
	if c.acs3 {
		c.action = r.Header.Get("x-acs-action")
	} else {
		c.action = q.get("Action")
	}
	c.xml = strings.EqualFold(q.get("Format"), "XML")
	if c.action == "UpdateSubscription" {
		subsID := q.get("SubsId")
		s.stats.enter(subsID)
		defer s.stats.leave(subsID)
	}
	if s.cfg.Latency > 0 || s.cfg.Jitter > 0 {
		if !s.sleep(r.Context(), s.latency(), false) {
			s.abort(c)
			return
		}
	}
	now := s.clock()
	act, gerr := s.admit(c, now)
	if gerr != nil {
		if gerr.throttle {
			s.throttled(c, gerr.limit, gerr.left)
		} else {
			s.gatewayError(c, gerr.gwError)
		}
		return
	}
	// Faults, then business.
	if rule, ok := s.faults.match(c.action, q.get, &s.rngMu, s.rng); ok {
		s.fault(c, act, rule)
		return
	}
	s.answer(c, s.business(act, q, now))
}

// gwError is a gateway answer other than the business one.
type gwError struct {
	status    int
	code, msg string
}

// gwVerdict is what admit decided against a call: an error, or throttling.
type gwVerdict struct {
	*gwError
	throttle bool
	limit    float64
	left     time.Duration
}

func gwErr(status int, code, msg string) *gwVerdict {
	return &gwVerdict{gwError: &gwError{status, code, msg}}
}

// missing is the gateway's answer to a common parameter or header left out.
func missing(name string) *gwVerdict {
	return gwErr(400, "MissingParameter", "The input parameter \""+name+"\" that is mandatory for processing this request is not supplied.")
}

// admit runs the gateway's checks, in the order a POP gateway runs them:
//
//  1. method; Action known and Version served
//  2. credentials: AccessKeyId known
//  3. Timestamp (x-acs-date) well formed and within MaxClockSkew
//  4. SignatureNonce (x-acs-signature-nonce) not seen within MaxClockSkew
//  5. signature: RPC HMAC-SHA1 in the query, or ACS3-HMAC-SHA256 in the
//     Authorization header
//  6. quota of the AccessKeyId
//  7. the Action's required parameters
//
// It returns the action, or what to answer instead.
func (s *Sim) admit(c *call, now time.Time) (action, *gwVerdict) {
	r, q := c.r, c.q
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return actUnknown, gwErr(400, "UnsupportedHTTPMethod", "Specified http method is not supported.")
	}
	// 1. Action and Version.
	act := lookupAction(c.action)
	version := q.get("Version")
	if c.acs3 {
		if c.action == "" {
			return act, missing("x-acs-action")
		}
		version = r.Header.Get("x-acs-version")
	}
	if act == actUnknown {
		return act, gwErr(404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method.")
	}
	switch {
	case version == "" && c.acs3:
		return act, missing("x-acs-version")
	case version == "":
		return act, gwErr(400, "MissingVersion", "Version is mandatory for this action.")
	case version != APIVersion:
		return act, gwErr(400, "InvalidVersion", "Specified parameter Version is not valid.")
	}
	// 2-5. Credentials, time, nonce and signature.
	var ak string
	var v *gwVerdict
	if c.acs3 {
		ak, v = s.authACS3(c, now)
	} else {
		ak, v = s.authRPC(c, now)
	}
	if v != nil {
		return act, v
	}
	// 6. Quota.
	if ok, limit, left := s.quota.Load().allow(ak, act == actUpdateSubscription); !ok {
		return act, &gwVerdict{throttle: true, limit: limit, left: left}
	}
	// 7. Required parameters.
	for _, name := range act.required() {
		if q.get(name) == "" {
			return act, gwErr(400, "Missing"+name, name+" is mandatory for this action.")
		}
	}
	return act, nil
}

// checkTime applies the Timestamp rules to ts.
func checkTime(ts string, now time.Time) *gwVerdict {
	t, err := time.Parse(TimestampLayout, ts)
	if err != nil {
		return gwErr(400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
	}
	if d := now.Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
		return gwErr(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
	}
	return nil
}

// checkNonce records nonce and rejects one seen before.
func (s *Sim) checkNonce(nonce string, now time.Time) *gwVerdict {
	if s.nonces.seen(nonce, now) {
		return gwErr(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
	}
	return nil
}

// authRPC checks the credentials, time, nonce and HMAC-SHA1 signature of
// an RPC request (all in the query or form body).
func (s *Sim) authRPC(c *call, now time.Time) (string, *gwVerdict) {
	q := c.q
	ak := q.get("AccessKeyId")
	if ak == "" {
		return "", gwErr(400, "MissingAccessKeyId", "AccessKeyId is mandatory for this action.")
	}
	sg, ak, v := s.credential(ak, q.get("SecurityToken"), now)
	if v != nil {
		return "", v
	}
	ts := q.get("Timestamp")
	if ts == "" {
		return "", gwErr(400, "MissingTimestamp", "Timestamp is mandatory for this action.")
	}
	if v := checkTime(ts, now); v != nil {
		return "", v
	}
	nonce := q.get("SignatureNonce")
	if nonce == "" {
		return "", gwErr(400, "MissingSignatureNonce", "SignatureNonce is mandatory for this action.")
	}
	if v := s.checkNonce(nonce, now); v != nil {
		return "", v
	}
	sig := q.get("Signature")
	if sig == "" {
		return "", gwErr(400, "MissingSignature", "Signature is mandatory for this action.")
	}
	switch m := q.get("SignatureMethod"); m {
	case "HMAC-SHA1":
	case "":
		return "", gwErr(400, "MissingSignatureMethod", "SignatureMethod is mandatory for this action.")
	default:
		return "", gwErr(400, "InvalidSignatureMethod", "Specified signature method "+quoteShort(m)+" is not supported; use HMAC-SHA1.")
	}
	switch sv := q.get("SignatureVersion"); sv {
	case "1.0":
	case "":
		return "", gwErr(400, "MissingSignatureVersion", "SignatureVersion is mandatory for this action.")
	default:
		return "", gwErr(400, "InvalidSignatureVersion", "Specified signature version "+quoteShort(sv)+" is not supported; use 1.0.")
	}
	q.sts = appendStringToSign(q.sts[:0], c.r.Method, q.withoutSignature())
	if !sg.verify(q.sts, sig) {
		return "", gwErr(400, "SignatureDoesNotMatch",
			"Specified signature is not matched with our calculation. server string to sign is:"+string(q.sts))
	}
	return ak, nil
}

// authACS3 checks the credentials, time, nonce and ACS3-HMAC-SHA256
// signature of a request signed in its headers.
func (s *Sim) authACS3(c *call, now time.Time) (string, *gwVerdict) {
	r := c.r
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", missing("Authorization")
	}
	auth, why := parseACS3Auth(h)
	if why != "" {
		return "", gwErr(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards: "+why+".")
	}
	sg, ak, v := s.credential(auth.credential, r.Header.Get("x-acs-security-token"), now)
	if v != nil {
		return "", v
	}
	ts := r.Header.Get("x-acs-date")
	if ts == "" {
		return "", missing("x-acs-date")
	}
	if v := checkTime(ts, now); v != nil {
		return "", v
	}
	nonce := r.Header.Get("x-acs-signature-nonce")
	if nonce == "" {
		return "", missing("x-acs-signature-nonce")
	}
	if v := s.checkNonce(nonce, now); v != nil {
		return "", v
	}
	if r.Header.Get("x-acs-content-sha256") == "" {
		return "", missing("x-acs-content-sha256")
	}
	if name := auth.unsignedHeader(r); name != "" {
		return "", gwErr(400, "IncompleteSignature",
			"The request signature does not conform to Aliyun standards: header "+quoteShort(name)+" must be listed in SignedHeaders.")
	}
	// The canonical request uses the hash of the body received, so a body
	// that does not match x-acs-content-sha256 fails here too.
	sts := ACS3StringToSign(ACS3CanonicalRequest(r, c.q.body, auth.signedHeaders))
	if !verifyACS3(sts, sg.secret, auth.signature) {
		return "", gwErr(400, "SignatureDoesNotMatch",
			"Specified signature is not matched with our calculation. server string to sign is:"+sts)
	}
	return ak, nil
}

// credential finds the signer of an AccessKeyId: a permanent AccessKey
// (whose SecurityToken, if any, is not checked), or STS credentials the
// credentials URI handed out, whose token must match and be unexpired.
// It returns the quota key of the caller.
func (s *Sim) credential(ak, token string, now time.Time) (*signer, string, *gwVerdict) {
	if sg := s.signers[ak]; sg != nil {
		return sg, ak, nil
	}
	sg, v := s.sts.check(ak, token, now)
	return sg, stsPrincipal, v
}

// withoutSignature returns the sorted parameters minus Signature, reusing
// the parameter slice's tail.
func (q *apiRequest) withoutSignature() []param {
	for i, p := range q.params {
		if p.k == "Signature" {
			// Move Signature to the end so the prefix stays sorted.
			copy(q.params[i:], q.params[i+1:])
			q.params[len(q.params)-1] = p
			return q.params[:len(q.params)-1]
		}
	}
	return q.params
}

// business runs the action against the state.
func (s *Sim) business(act action, q *apiRequest, now time.Time) result {
	switch act {
	case actUpdateSubscription:
		return s.updateSubscription(q, now)
	case actBindAxb:
		return s.bindAxb(q, now)
	case actQuerySubscriptionDetail:
		return s.querySubscriptionDetail(q, now)
	case actUnbindSubscription:
		return s.unbindSubscription(q, now)
	}
	panic("dyplsim: unreachable action")
}

// answer writes a business result as HTTP 200.
func (s *Sim) answer(c *call, res result) {
	c.q.out = appendResult(c.q.out[:0], c.xml, c.action, c.reqID, res)
	writeBody(c.w, http.StatusOK, c.xml, c.reqID, c.q.out)
	s.record(c, res.code, res.applied)
}

func (s *Sim) record(c *call, code string, applied bool) {
	s.stats.record(c.action, code, applied)
	if e := s.log.Debug(); e.Enabled() {
		e.Str("action", c.action).Str("subs_id", c.q.get("SubsId")).Str("operate_type", c.q.get("OperateType")).
			Str("code", code).Str("request_id", c.reqID).Msg("call")
	}
}

// gatewayError answers a POP gateway error.
func (s *Sim) gatewayError(c *call, e *gwError) {
	c.q.out = appendGatewayError(c.q.out[:0], c.xml, c.reqID, e.code, e.msg)
	writeBody(c.w, e.status, c.xml, c.reqID, c.q.out)
	s.record(c, e.code, false)
}

// throttled answers a call over quota, in the channel Config.ThrottleCode
// selects.
func (s *Sim) throttled(c *call, limit float64, left time.Duration) {
	code := s.cfg.throttleCode()
	c.w.Header().Set("x-ratelimit-user-api", "Limit:"+strconv.FormatFloat(limit, 'f', -1, 64)+
		",Remain:0,TimeLeft:"+strconv.FormatInt(left.Milliseconds(), 10))
	if s.cfg.businessThrottle() {
		s.answer(c, fail(code, messageFor(code)))
		return
	}
	msg := "Request was denied due to user flow control."
	if d, ok := gatewayDefaults[code]; ok {
		msg = d.msg
	}
	s.gatewayError(c, &gwError{s.cfg.tstatus(), code, msg})
}

func messageFor(code string) string {
	if m, ok := businessMessages[code]; ok {
		return m
	}
	return code
}

// latency draws Config.Latency plus jitter.
func (s *Sim) latency() time.Duration {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		s.rngMu.Lock()
		d += time.Duration(s.rng.Int64N(int64(s.cfg.Jitter)))
		s.rngMu.Unlock()
	}
	return d
}

// sleep waits d. It returns false if the simulator was closed or, when
// untilGone is set, the client went away first.
func (s *Sim) sleep(ctx context.Context, d time.Duration, untilGone bool) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	var gone <-chan struct{}
	if untilGone {
		gone = ctx.Done()
	}
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return false
	case <-gone:
		return false
	}
}

// abort ends a call cut short by Close.
func (s *Sim) abort(c *call) {
	s.record(c, StatAborted, false)
	dropConn(c.w)
}

// fault applies a fault rule to a call that passed the gateway.
func (s *Sim) fault(c *call, act action, f FaultRule) {
	switch k := f.kind(); k {
	case FaultLatency:
		s.faultLatency(c, act, f.Delay)
	case FaultHang:
		s.faultHang(c, act, f.Delay)
	case FaultDrop:
		s.record(c, StatDrop, false)
		dropConn(c.w)
	case FaultDropAfter:
		applied := s.applyUnseen(c, act)
		s.record(c, StatDropAfter, applied)
		dropConn(c.w)
	case FaultCode, FaultGateway, FaultHTTP, FaultEmpty:
		// An answer that does not say whether the call applied, which it
		// did with Apply.
		applied := f.Apply && s.applyUnseen(c, act)
		switch k {
		case FaultCode:
			s.faultCode(c, f, applied)
		case FaultGateway:
			s.faultGateway(c, f, applied)
		case FaultHTTP:
			s.faultHTTP(c, f, applied)
		case FaultEmpty:
			s.faultEmpty(c, applied)
		}
	}
}

// applyUnseen serves the call without answering it, and reports whether it
// applied.
func (s *Sim) applyUnseen(c *call, act action) bool {
	return s.business(act, c.q, s.clock()).applied
}

// faultLatency answers the call after delay d, or aborts it if the
// simulator closes first.
func (s *Sim) faultLatency(c *call, act action, d time.Duration) {
	if !s.sleep(c.r.Context(), d, false) {
		s.abort(c)
		return
	}
	s.answer(c, s.business(act, c.q, s.clock()))
}

// faultHang answers the call after delay d (0: DefaultHangDelay) unless the
// client goes away or the simulator closes first; then it is never served.
func (s *Sim) faultHang(c *call, act action, d time.Duration) {
	if d == 0 {
		d = DefaultHangDelay
	}
	if !s.sleep(c.r.Context(), d, true) {
		s.record(c, StatHang, false)
		select {
		case <-s.closed:
			dropConn(c.w)
		default: // the client is gone; returning closes the connection
		}
		return
	}
	s.answer(c, s.business(act, c.q, s.clock()))
}

// faultCode answers HTTP 200 with the rule's business code (default
// isp.SYSTEM_ERROR) and message (default the code's own).
func (s *Sim) faultCode(c *call, f FaultRule, applied bool) {
	code := f.Code
	if code == "" {
		code = "isp.SYSTEM_ERROR"
	}
	msg := f.Message
	if msg == "" {
		msg = messageFor(code)
	}
	c.q.out = appendResult(c.q.out[:0], c.xml, c.action, c.reqID, fail(code, msg))
	writeBody(c.w, http.StatusOK, c.xml, c.reqID, c.q.out)
	s.record(c, code, applied)
}

// faultGateway answers a gateway error: the rule's code (default
// ServiceUnavailable), with the status and message the gateway gives that
// code unless the rule sets them.
func (s *Sim) faultGateway(c *call, f FaultRule, applied bool) {
	code, status, msg := f.Code, f.Status, f.Message
	if code == "" {
		code = "ServiceUnavailable"
	}
	d, known := gatewayDefaults[code]
	if status == 0 {
		status = 400
		if known {
			status = d.status
		} else if code == "ServiceUnavailable" {
			status = 503
		}
	}
	if msg == "" {
		msg = code
		if known {
			msg = d.msg
		}
	}
	c.q.out = appendGatewayError(c.q.out[:0], c.xml, c.reqID, code, msg)
	writeBody(c.w, status, c.xml, c.reqID, c.q.out)
	s.record(c, code, applied)
}

// faultHTTP answers a bare HTTP error, as a load balancer would: the rule's
// status (default 502) and raw body (default a non-JSON HTML page).
func (s *Sim) faultHTTP(c *call, f FaultRule, applied bool) {
	status := f.Status
	if status == 0 {
		status = http.StatusBadGateway
	}
	body := f.Body
	if body == "" {
		body = fmt.Sprintf("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n</body>\r\n</html>\r\n",
			status, http.StatusText(status), status, http.StatusText(status))
	}
	c.w.Header()["Content-Type"] = contentTypeHTML
	c.w.WriteHeader(status)
	c.w.Write([]byte(body))
	s.record(c, StatHTTP+strconv.Itoa(status), applied)
}

// faultEmpty answers HTTP 200 with an empty body.
func (s *Sim) faultEmpty(c *call, applied bool) {
	c.w.Header()["Content-Type"] = contentTypeJSON
	c.w.Header().Set("Content-Length", "0")
	c.w.WriteHeader(http.StatusOK)
	s.record(c, StatEmpty, applied)
}

// dropConn closes the client connection without an answer.
func dropConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
