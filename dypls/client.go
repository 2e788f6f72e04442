// Package dypls is dyplsq's client for Alibaba Cloud Dyplsapi (Phone Number
// Protection), over the official Go SDK.
//
// The SDK's client rewrites its own HTTP settings on every call, so one
// *dyplsapi.Client cannot serve two goroutines; Client keeps a pool of them
// (one per concurrent caller, each keeping its connections alive) and is
// safe for concurrent use. The SDK's own retry is off: callers own retries.
//
// Every failure comes back as an *Error carrying the code (API code, gateway
// code or a transport reason), message, RequestId, HTTP status, whether the
// server may have applied the call, and its Class. Business codes arrive in
// a 200 body with Code != "OK", gateway codes as 4xx/5xx; both are handled,
// as are empty and unreadable bodies, timeouts and refused connections.
// Everything an Error holds is masked with Mask.
//
// Credentials are a static AccessKey (optionally with an STS token) or,
// when none is configured, the SDK's default credentials chain (see
// CredentialSources). One provider serves every pooled SDK client, which
// asks it on every request, so credentials refreshed before their expiry
// reach every client. A call the gateway answers with an expired or
// unknown security token is made once more with freshly fetched
// credentials, when the source hands out new ones; a source that fails
// gives an Error with CodeCredentials, which is systemic.
package dypls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	sdk "github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkerr "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

// Defaults for Config.
const (
	DefaultEndpoint = "https://dyplsapi.aliyuncs.com"
	DefaultRegion   = "cn-hangzhou"
	DefaultTimeout  = 10 * time.Second
)

// Config describes how to reach Dyplsapi.
type Config struct {
	// Endpoint is a URL giving scheme, host and optional port:
	// https://dyplsapi.aliyuncs.com (default) or http://127.0.0.1:8086 for
	// the simulator.
	Endpoint string
	Region   string // default cn-hangzhou
	// AccessKeyID and AccessKeySecret are a static AccessKey, with
	// SecurityToken for static STS credentials. Left empty, credentials
	// come from the SDK's default chain (CredentialSources).
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
	// Timeout bounds a whole call (connect, send, read). The SDK takes no
	// context, so this is the only way a call ends; keep it below the task
	// timeout. Default 10 s.
	Timeout time.Duration
	// ConnectTimeout bounds the TCP (and TLS) set-up; default the smaller of
	// Timeout and 5 s.
	ConnectTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = min(c.Timeout, 5*time.Second)
	}
	return c
}

// Validate reports the first problem of the configuration, naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := parseEndpoint(c.Endpoint); err != nil {
		return err
	}
	if c.AccessKeyID == "" && c.AccessKeySecret == "" {
		if c.SecurityToken != "" {
			return errors.New("ALIBABA_CLOUD_SECURITY_TOKEN is set without ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET: an STS token needs its AccessKey")
		}
		return nil // the SDK's default credentials chain
	}
	if c.AccessKeyID == "" {
		return errors.New("ALIBABA_CLOUD_ACCESS_KEY_ID is not set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is: set both for a static AccessKey, or neither for the default credentials chain")
	}
	if c.AccessKeySecret == "" {
		return errors.New("ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set but ALIBABA_CLOUD_ACCESS_KEY_ID is: set both for a static AccessKey, or neither for the default credentials chain")
	}
	return nil
}

func parseEndpoint(raw string) (scheme, host string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("DYPLS_ENDPOINT %q: want a URL such as https://dyplsapi.aliyuncs.com or http://127.0.0.1:8086", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		scheme = "HTTP"
	case "https":
		scheme = "HTTPS"
	default:
		return "", "", fmt.Errorf("DYPLS_ENDPOINT %q: scheme must be http or https", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return "", "", fmt.Errorf("DYPLS_ENDPOINT %q: must not have a path", raw)
	}
	return scheme, u.Host, nil
}

// newClientMu serialises SDK client creation across the process.
var newClientMu sync.Mutex

// Client calls Dyplsapi. It is safe for concurrent use.
type Client struct {
	cfg    Config
	scheme string
	host   string
	creds  *credProvider

	mu   sync.Mutex
	free []*dyplsapi.Client
}

// New returns a Client for cfg. No call is made until the first request.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scheme, host, _ := parseEndpoint(cfg.Endpoint)
	creds := chainProvider()
	if cfg.AccessKeyID != "" {
		creds = staticProvider(cfg)
	}
	return &Client{cfg: cfg, scheme: scheme, host: host, creds: creds}, nil
}

// Config returns the configuration in use, defaults applied.
func (c *Client) Config() Config { return c.cfg }

// get takes an SDK client from the pool, making one when none is free.
func (c *Client) get() (*dyplsapi.Client, error) {
	c.mu.Lock()
	if n := len(c.free); n > 0 {
		cl := c.free[n-1]
		c.free = c.free[:n-1]
		c.mu.Unlock()
		return cl, nil
	}
	c.mu.Unlock()
	conf := sdk.NewConfig().WithScheme(c.scheme).WithAutoRetry(false)
	// The SDK initialises a package-level endpoint map lazily, without a
	// lock: creating two clients at once is a data race.
	newClientMu.Lock()
	cl, err := dyplsapi.NewClientWithOptions(c.cfg.Region, conf, c.creds)
	newClientMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("dypls: create SDK client: %w", err)
	}
	cl.Domain = c.host
	// Set once on the client, never per request: a per-request timeout
	// sticks to the shared http.Client.
	cl.SetReadTimeout(c.cfg.Timeout)
	cl.SetConnectTimeout(c.cfg.ConnectTimeout)
	return cl, nil
}

func (c *Client) put(cl *dyplsapi.Client) {
	c.mu.Lock()
	c.free = append(c.free, cl)
	c.mu.Unlock()
}

// Close releases idle connections.
func (c *Client) Close() {
	c.mu.Lock()
	free := c.free
	c.free = nil
	c.mu.Unlock()
	for _, cl := range free {
		cl.Shutdown()
	}
}

// Result is what a successful call returns.
type Result struct {
	RequestID  string
	HTTPStatus int
	Duration   time.Duration
}

// Update holds the parameters of UpdateSubscription, named as the API names
// them. Booleans and integers are strings, as the SDK sends them.
type Update struct {
	PoolKey, ProductType, SubsId, PhoneNoX, OperateType                    string
	PhoneNoA, PhoneNoB, Expiration, GroupId, CallRestrict, CallDisplayType string
	OutId, IsRecordingEnabled, RingConfig, ASRStatus, ASRModelId           string
}

// UpdateSubscription changes one property of a binding. The SDK takes no
// context: ctx is checked before the call, which then runs to its end or
// to the call timeout.
func (c *Client) UpdateSubscription(ctx context.Context, u Update) (Result, error) {
	req := dyplsapi.CreateUpdateSubscriptionRequest()
	req.PoolKey = u.PoolKey
	req.ProductType = u.ProductType
	req.SubsId = u.SubsId
	req.PhoneNoX = u.PhoneNoX
	req.OperateType = u.OperateType
	req.PhoneNoA = u.PhoneNoA
	req.PhoneNoB = u.PhoneNoB
	req.Expiration = u.Expiration
	req.GroupId = u.GroupId
	req.CallRestrict = u.CallRestrict
	req.CallDisplayType = requests.Integer(u.CallDisplayType)
	req.OutId = u.OutId
	req.IsRecordingEnabled = requests.Boolean(u.IsRecordingEnabled)
	req.RingConfig = u.RingConfig
	req.ASRStatus = requests.Boolean(u.ASRStatus)
	req.ASRModelId = u.ASRModelId
	resp := dyplsapi.CreateUpdateSubscriptionResponse()
	res, err := c.do(ctx, req.RpcRequest, req, resp, func() (string, string, string) {
		return resp.Code, resp.Message, resp.RequestId
	})
	return res, err
}

// Detail is the state of a binding as QuerySubscriptionDetail reports it.
type Detail struct {
	SubsId, PhoneNoA, PhoneNoB, PhoneNoX string
	Status                               int64 // 0 expired, 1 in effect
	ExpireDate, GmtCreate                string
	GroupId                              int64
	NeedRecord, ASRStatus                bool
	ASRModelId, CallRestrict, Extension  string
}

// Binding identifies a binding for QuerySubscriptionDetail.
type Binding struct {
	PoolKey, ProductType, SubsId, PhoneNoX string
}

// QuerySubscriptionDetail reads a binding, to settle ambiguous outcomes.
func (c *Client) QuerySubscriptionDetail(ctx context.Context, b Binding) (Detail, Result, error) {
	req := dyplsapi.CreateQuerySubscriptionDetailRequest()
	req.PoolKey = b.PoolKey
	req.ProductType = b.ProductType
	req.SubsId = b.SubsId
	req.PhoneNoX = b.PhoneNoX
	resp := dyplsapi.CreateQuerySubscriptionDetailResponse()
	res, err := c.do(ctx, req.RpcRequest, req, resp, func() (string, string, string) {
		return resp.Code, resp.Message, resp.RequestId
	})
	if err != nil {
		return Detail{}, res, err
	}
	d := resp.SecretBindDetailDTO
	return Detail{
		SubsId: d.SubsId, PhoneNoA: d.PhoneNoA, PhoneNoB: d.PhoneNoB, PhoneNoX: d.PhoneNoX,
		Status: d.Status, ExpireDate: d.ExpireDate, GmtCreate: d.GmtCreate, GroupId: d.GroupId,
		NeedRecord: d.NeedRecord, ASRStatus: d.ASRStatus, ASRModelId: d.ASRModelId,
		CallRestrict: d.CallRestrict, Extension: d.Extension,
	}, res, nil
}

// Bind holds the parameters of BindAxb used by dyplsq (tests and checks).
type Bind struct {
	PoolKey, PhoneNoA, PhoneNoB, PhoneNoX, Expiration, OutId string
}

// Bound is the binding BindAxb created.
type Bound struct {
	SubsId, SecretNo, Extension string
}

// BindAxb creates an AXB binding.
func (c *Client) BindAxb(ctx context.Context, b Bind) (Bound, Result, error) {
	req := dyplsapi.CreateBindAxbRequest()
	req.PoolKey = b.PoolKey
	req.PhoneNoA = b.PhoneNoA
	req.PhoneNoB = b.PhoneNoB
	req.PhoneNoX = b.PhoneNoX
	req.Expiration = b.Expiration
	req.OutId = b.OutId
	resp := dyplsapi.CreateBindAxbResponse()
	res, err := c.do(ctx, req.RpcRequest, req, resp, func() (string, string, string) {
		return resp.Code, resp.Message, resp.RequestId
	})
	if err != nil {
		return Bound{}, res, err
	}
	d := resp.SecretBindDTO
	return Bound{SubsId: d.SubsId, SecretNo: d.SecretNo, Extension: d.Extension}, res, nil
}

// do runs one call on a pooled SDK client and turns every answer into nil
// or an *Error. A call refused for its security token is made once more
// with fresh credentials, when the source has any.
func (c *Client) do(ctx context.Context, rpc *requests.RpcRequest, req requests.AcsRequest, resp responses.AcsResponse,
	body func() (code, msg, requestID string)) (Result, error) {
	action := rpc.GetActionName()
	if err := ctx.Err(); err != nil {
		return Result{}, newError(action, CodeNotCalled, err.Error(), "", 0, false)
	}
	res, callErr, err := c.call(req, resp)
	if err != nil {
		return Result{}, err
	}
	if usedID, usedToken, ok := c.refusedCredentials(rpc, callErr); ok {
		switch rerr := c.creds.forceRefresh(usedID, usedToken); {
		case errors.Is(rerr, errNotRefreshed):
			// Nothing newer: the refusal stands.
		case rerr != nil:
			return res, credentialsErr(action, rerr)
		default:
			delete(rpc.GetQueryParams(), "SecurityToken")
			first := res.Duration
			if res, callErr, err = c.call(req, resp); err != nil {
				return Result{}, err
			}
			res.Duration += first
		}
	}
	code, msg, reqID := body()
	res.RequestID = reqID
	if callErr != nil {
		return res, classifyCallError(action, callErr, res.HTTPStatus)
	}
	switch code {
	case CodeOK:
		return res, nil
	case "":
		// A 2xx without a Code: it may or may not have been applied.
		return res, newError(action, CodeEmptyResponse, "reply without a Code", reqID, res.HTTPStatus, true)
	default:
		return res, newError(action, code, msg, reqID, res.HTTPStatus, false)
	}
}

// call makes one attempt on a pooled SDK client. callErr is what the SDK
// returned; err is set when no SDK client could be made.
func (c *Client) call(req requests.AcsRequest, resp responses.AcsResponse) (res Result, callErr, err error) {
	cl, err := c.get()
	if err != nil {
		return Result{}, nil, err
	}
	start := time.Now()
	callErr = cl.DoAction(req, resp)
	res.Duration = time.Since(start)
	// The SDK client stays usable after any error; return it to the pool.
	c.put(cl)
	if br, ok := resp.(interface{ GetHttpStatus() int }); ok {
		res.HTTPStatus = br.GetHttpStatus()
	}
	return res, callErr, nil
}

// refusedCredentials reports whether the gateway refused the call's
// credentials in a way a refresh can cure, and which credentials the call
// was signed with.
func (c *Client) refusedCredentials(rpc *requests.RpcRequest, callErr error) (id, token string, ok bool) {
	var se *sdkerr.ServerError
	if callErr == nil || !c.creds.refreshable() || !errors.As(callErr, &se) {
		return "", "", false
	}
	q := rpc.GetQueryParams()
	id, token = q["AccessKeyId"], q["SecurityToken"]
	return id, token, credentialsCode(se.ErrorCode(), token != "")
}

// classifyCallError maps what the SDK returned as a Go error.
func classifyCallError(action string, err error, status int) *Error {
	var cre *CredentialsError
	if errors.As(err, &cre) {
		return credentialsErr(action, err)
	}
	var se *sdkerr.ServerError
	if errors.As(err, &se) {
		st := se.HttpStatus()
		code := se.ErrorCode()
		msg := redactTokens(se.Message())
		if code == "" {
			// Not our JSON: a proxy page or a bare status.
			code = fmt.Sprintf("%s%d", CodeHTTPPrefix, st)
		}
		return newError(action, code, msg, se.RequestId(), st, st >= 500)
	}
	var ce *sdkerr.ClientError
	if errors.As(err, &ce) {
		if ce.ErrorCode() == sdkerr.JsonUnmarshalErrorCode {
			return newError(action, CodeUnreadable, "the reply is not the expected JSON", "", status, true)
		}
		if inner := ce.OriginError(); inner != nil {
			if e := classifyTransport(action, inner); e != nil {
				return e
			}
		}
		return newError(action, CodeTransport, redactTokens(ce.Error()), "", status, true)
	}
	if e := classifyTransport(action, err); e != nil {
		return e
	}
	return newError(action, CodeTransport, transportMessage(err), "", status, true)
}

// tokenParam matches the value of a SecurityToken or BearerToken parameter
// in a URL (=, &) or in a string-to-sign (%3D, %26), which the SDK sends
// with STS or bearer credentials and which error texts echo.
var tokenParam = regexp.MustCompile(`((?:SecurityToken|BearerToken)(?:=|%3D|%253D))(?:[^&]*?)(&|%26|$)`)

// redactTokens hides credential tokens in a message.
func redactTokens(msg string) string {
	if !strings.Contains(msg, "Token") {
		return msg
	}
	return tokenParam.ReplaceAllString(msg, "${1}***${2}")
}

// transportMessage is the text of a transport failure without the request
// URL, which holds every parameter, the signature and any SecurityToken.
func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return redactTokens(ue.Op + ": " + ue.Err.Error())
	}
	return redactTokens(err.Error())
}

// classifyTransport recognises timeouts, refused and dropped connections.
// A failure while connecting is not ambiguous: nothing was sent.
func classifyTransport(action string, err error) *Error {
	var op *net.OpError
	dial := errors.As(err, &op) && op.Op == "dial"
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return newError(action, CodeConnectionRefused, "connection refused", "", 0, false)
	case dial && errors.As(err, &ne) && ne.Timeout():
		return newError(action, CodeConnectFailed, "connect timeout", "", 0, false)
	case dial:
		return newError(action, CodeConnectFailed, op.Err.Error(), "", 0, false)
	case errors.As(err, &ne) && ne.Timeout():
		return newError(action, CodeTimeout, "no reply within the call timeout", "", 0, true)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return newError(action, CodeConnectionDropped, "connection closed before the reply", "", 0, true)
	}
	return nil
}
