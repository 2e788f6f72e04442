package dyplsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Fault kinds.
const (
	// FaultCode answers HTTP 200 with a business Code (default
	// isp.SYSTEM_ERROR).
	FaultCode = "code"
	// FaultGateway answers a JSON gateway error with Status (default 503)
	// and Code (default ServiceUnavailable).
	FaultGateway = "gateway"
	// FaultHTTP answers Status (default 502) with the raw Body (default a
	// non-JSON HTML page), as a load balancer would.
	FaultHTTP = "http"
	// FaultEmpty answers HTTP 200 with an empty body.
	FaultEmpty = "empty"
	// FaultHang waits Delay (default 1h) before handling the call
	// normally; if the client goes away first, nothing is applied.
	FaultHang = "hang"
	// FaultDrop closes the connection without answering and without
	// applying anything.
	FaultDrop = "drop"
	// FaultDropAfter applies the call (an UpdateSubscription changes the
	// binding) and then closes the connection without answering: the
	// ambiguous case.
	FaultDropAfter = "drop_after"
	// FaultLatency waits Delay, then handles the call normally.
	FaultLatency = "latency"
)

// DefaultHangDelay is how long a hang fault waits when Delay is 0.
const DefaultHangDelay = time.Hour

// FaultRule injects a failure into matching API calls. Rules are evaluated
// in order after the gateway checks (signature, nonce, throttling, required
// parameters) have passed; the first rule that matches and fires decides the
// call.
//
// In JSON the fields keep their names and Delay is a Go duration string
// such as "2s".
type FaultRule struct {
	// Action, SubsId and OperateType select calls; empty matches any.
	Action, SubsId, OperateType string
	// Params selects calls by other request parameters: every name must
	// have exactly that value (e.g. {"OutId": "old"} hits one job's call
	// whatever order the calls come in).
	Params map[string]string `json:",omitempty"`
	// Kind is one of FaultCode (the default when empty), FaultGateway,
	// FaultHTTP, FaultEmpty, FaultHang, FaultDrop, FaultDropAfter,
	// FaultLatency.
	Kind string
	// Code and Message are the answer of code and gateway faults.
	Code, Message string
	// Status is the HTTP status of gateway and http faults.
	Status int
	// Body is the raw body of http faults.
	Body string
	// Delay is the wait of hang and latency faults.
	Delay time.Duration
	// Count limits the rule to the next Count firing calls; 0 is
	// unlimited.
	Count int
	// Rate is the probability (0..1) that a matching call is hit; 0 means 1.
	Rate float64
	// After skips the first After matching calls: "fail twice then
	// succeed" is Count 2, "succeed once then fail" is After 1.
	After int
	// Apply makes code, gateway, http and empty faults apply the call's
	// change first, so the failure hides a success.
	Apply bool
}

// FaultState is a FaultRule with its counters, as Faults and the control
// plane report it.
type FaultState struct {
	FaultRule
	Seen  int  // matching calls so far
	Fired int  // calls the rule decided
	Spent bool // Count reached: the rule no longer fires
}

// Validate reports whether the rule is well formed.
func (r FaultRule) Validate() error {
	switch r.Kind {
	case "", FaultCode, FaultGateway, FaultHTTP, FaultEmpty, FaultHang, FaultDrop, FaultDropAfter, FaultLatency:
	default:
		return fmt.Errorf("fault Kind %q: want code, gateway, http, empty, hang, drop, drop_after or latency", r.Kind)
	}
	switch {
	case r.Rate < 0 || r.Rate > 1:
		return fmt.Errorf("fault Rate %v: want 0..1", r.Rate)
	case r.Count < 0:
		return fmt.Errorf("fault Count %d: want >= 0", r.Count)
	case r.After < 0:
		return fmt.Errorf("fault After %d: want >= 0", r.After)
	case r.Delay < 0:
		return fmt.Errorf("fault Delay %v: want >= 0", r.Delay)
	case r.Status != 0 && (r.Status < 200 || r.Status > 599):
		return fmt.Errorf("fault Status %d: want 200..599", r.Status)
	}
	return nil
}

// kind returns Kind with the default applied.
func (r FaultRule) kind() string {
	if r.Kind == "" {
		return FaultCode
	}
	return r.Kind
}

type faultRuleJSON struct {
	Action      string            `json:"Action,omitempty"`
	SubsId      string            `json:"SubsId,omitempty"`
	OperateType string            `json:"OperateType,omitempty"`
	Params      map[string]string `json:"Params,omitempty"`
	Kind        string            `json:"Kind,omitempty"`
	Code        string            `json:"Code,omitempty"`
	Message     string            `json:"Message,omitempty"`
	Status      int               `json:"Status,omitempty"`
	Body        string            `json:"Body,omitempty"`
	Delay       json.RawMessage   `json:"Delay,omitempty"`
	Count       int               `json:"Count,omitempty"`
	Rate        float64           `json:"Rate,omitempty"`
	After       int               `json:"After,omitempty"`
	Apply       bool              `json:"Apply,omitempty"`
}

// MarshalJSON encodes the rule with Delay as a duration string.
func (r FaultRule) MarshalJSON() ([]byte, error) {
	j := faultRuleJSON{
		Action: r.Action, SubsId: r.SubsId, OperateType: r.OperateType, Params: r.Params, Kind: r.Kind,
		Code: r.Code, Message: r.Message, Status: r.Status, Body: r.Body,
		Count: r.Count, Rate: r.Rate, After: r.After, Apply: r.Apply,
	}
	if r.Delay != 0 {
		j.Delay = json.RawMessage(strconv.Quote(r.Delay.String()))
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes a rule. Delay is a duration string ("1.5s") or a
// number of nanoseconds; unknown fields are an error.
func (r *FaultRule) UnmarshalJSON(b []byte) error {
	var j faultRuleJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("fault rule: %w", err)
	}
	var d time.Duration
	if len(j.Delay) > 0 && string(j.Delay) != "null" {
		var s string
		if err := json.Unmarshal(j.Delay, &s); err == nil {
			var perr error
			if d, perr = time.ParseDuration(s); perr != nil {
				return fmt.Errorf("fault rule: Delay: %w", perr)
			}
		} else if err := json.Unmarshal(j.Delay, &d); err != nil {
			return errors.New(`fault rule: Delay: want a duration string such as "2s"`)
		}
	}
	*r = FaultRule{
		Action: j.Action, SubsId: j.SubsId, OperateType: j.OperateType, Params: j.Params, Kind: j.Kind,
		Code: j.Code, Message: j.Message, Status: j.Status, Body: j.Body, Delay: d,
		Count: j.Count, Rate: j.Rate, After: j.After, Apply: j.Apply,
	}
	return nil
}

// MarshalJSON flattens the rule and its counters into one object.
func (f FaultState) MarshalJSON() ([]byte, error) {
	rule, err := f.FaultRule.MarshalJSON()
	if err != nil {
		return nil, err
	}
	tail := fmt.Sprintf(`"Seen":%d,"Fired":%d,"Spent":%t}`, f.Seen, f.Fired, f.Spent)
	if len(rule) > 2 {
		tail = "," + tail
	}
	return append(rule[:len(rule)-1], tail...), nil
}

// UnmarshalJSON decodes what MarshalJSON produces.
func (f *FaultState) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var st struct {
		Seen, Fired int
		Spent       bool
	}
	counters := map[string]json.RawMessage{}
	for _, k := range []string{"Seen", "Fired", "Spent"} {
		if v, ok := m[k]; ok {
			counters[k] = v
			delete(m, k)
		}
	}
	cb, _ := json.Marshal(counters)
	if err := json.Unmarshal(cb, &st); err != nil {
		return err
	}
	rb, _ := json.Marshal(m)
	if err := f.FaultRule.UnmarshalJSON(rb); err != nil {
		return err
	}
	f.Seen, f.Fired, f.Spent = st.Seen, st.Fired, st.Spent
	return nil
}

type faultEntry struct {
	rule        FaultRule
	seen, fired int
}

func (e *faultEntry) spent() bool { return e.rule.Count > 0 && e.fired >= e.rule.Count }

// faultSet is the ordered rule list. n lets calls skip the lock when there
// are no rules.
type faultSet struct {
	mu    sync.Mutex
	rules []*faultEntry
	n     atomic.Int32
}

func (f *faultSet) set(rules []FaultRule) {
	es := make([]*faultEntry, len(rules))
	for i, r := range rules {
		es[i] = &faultEntry{rule: r}
	}
	f.mu.Lock()
	f.rules = es
	f.n.Store(int32(len(es)))
	f.mu.Unlock()
}

func (f *faultSet) add(r FaultRule) {
	f.mu.Lock()
	f.rules = append(f.rules, &faultEntry{rule: r})
	f.n.Store(int32(len(f.rules)))
	f.mu.Unlock()
}

func (f *faultSet) list() []FaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FaultState, len(f.rules))
	for i, e := range f.rules {
		out[i] = FaultState{FaultRule: e.rule, Seen: e.seen, Fired: e.fired, Spent: e.spent()}
	}
	return out
}

// match returns the rule that decides a call, if any. rng draws the Rate
// coin; mu guards it.
func (f *faultSet) match(action string, param func(string) string, rngMu *sync.Mutex, rng *rand.Rand) (FaultRule, bool) {
	if f.n.Load() == 0 {
		return FaultRule{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.rules {
		r := &e.rule
		if e.spent() ||
			r.Action != "" && r.Action != action ||
			r.SubsId != "" && r.SubsId != param("SubsId") ||
			r.OperateType != "" && r.OperateType != param("OperateType") ||
			!paramsMatch(r.Params, param) {
			continue
		}
		e.seen++
		if e.seen <= r.After {
			continue
		}
		if r.Rate > 0 && r.Rate < 1 {
			rngMu.Lock()
			hit := rng.Float64() < r.Rate
			rngMu.Unlock()
			if !hit {
				continue
			}
		}
		e.fired++
		return *r, true
	}
	return FaultRule{}, false
}

// businessMessages are the documented meanings of business codes, used when
// a fault gives no Message.
var businessMessages = map[string]string{
	"OK":                        "OK",
	"isp.RAM_PERMISSION_DENY":   "RAM permission denied",
	"isv.OUT_OF_SERVICE":        "service suspended",
	"isv.PRODUCT_UN_SUBSCRIPT":  "cloud communication product not activated",
	"isv.PRODUCT_UNSUBSCRIBE":   "product not activated",
	"isv.ACCOUNT_NOT_EXISTS":    "account does not exist",
	"isv.ACCOUNT_ABNORMAL":      "account abnormal",
	"isp.SYSTEM_ERROR":          "system error",
	"isp.UNKNOWN_ERR_CODE":      "carrier unknown error",
	"isv.PARTNER_NOT_EXIST":     "unknown partner",
	"isv.NO_NOT_EXIST":          "number does not exist",
	"isv.ILLEGAL_ARGUMENT":      "illegal argument",
	"isv.INVALID_PARAMETERS":    "invalid parameters",
	"isp.DAO_EXCEPTION":         "database exception",
	"isv.NO_AVAILABLE_NUMBER":   "no available number",
	"isp.VENDOR_UNAVAILABLE":    "carrier degraded",
	"isv.FLOW_LIMIT":            "business flow control",
	"isv.PARTNER_IS_CLOSED":     "partner is closed",
	"isv.FORBIDDEN_ACTION":      "forbidden action",
	"isv.NO_USED_BY_OTHERS":     "number used by another party",
	"isv.VENDOR_BIND_FAILED":    "carrier binding failed",
	"isv.EXPIRE_DATE_ILLEGAL":   "illegal expiration date",
	"isv.MOBILE_NUMBER_ILLEGAL": "illegal phone number",
	"isv.BIND_CONFLICT":         "binding conflict",
	"isv.SUBS_NOT_EXIST":        "binding does not exist",
	"isv.POOLKEY_NOT_EXISTS":    "number pool does not exist",
	"isv.SUBS_NOT_BELONG":       "binding does not belong to this account",
	"isv.UPDATE_CONFLICT":       "binding update conflict",
	"isp.GATEWAY_ERROR":         "gateway error",
}

// gatewayDefaults gives the status and message of well-known gateway codes.
var gatewayDefaults = map[string]struct {
	status int
	msg    string
}{
	"ServiceUnavailable":          {503, "The request has failed due to a temporary failure of the server."},
	"InternalError":               {500, "The request processing has failed due to some unknown error."},
	"Throttling":                  {400, "Request was denied due to flow control."},
	"Throttling.User":             {400, "Request was denied due to user flow control."},
	"Throttling.Api":              {400, "Request was denied due to api flow control."},
	"Forbidden.RAM":               {403, "User not authorized to operate on the specified resource."},
	"InvalidAccessKeyId.Inactive": {400, "Specified access key is disabled."},
	"InvalidAccessKeyId.NotFound": {404, "Specified access key is not found."},
	"SignatureDoesNotMatch":       {400, "Specified signature is not matched with our calculation."},
	"InvalidTimeStamp.Expired":    {400, "Specified time stamp or date value is expired."},
}

func paramsMatch(want map[string]string, param func(string) string) bool {
	for k, v := range want {
		if param(k) != v {
			return false
		}
	}
	return true
}
