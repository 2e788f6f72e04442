package dyplsim

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// action identifies a served API.
type action uint8

const (
	actUnknown action = iota
	actBindAxb
	actUpdateSubscription
	actQuerySubscriptionDetail
	actUnbindSubscription
)

func lookupAction(name string) action {
	switch name {
	case "BindAxb":
		return actBindAxb
	case "UpdateSubscription":
		return actUpdateSubscription
	case "QuerySubscriptionDetail":
		return actQuerySubscriptionDetail
	case "UnbindSubscription":
		return actUnbindSubscription
	}
	return actUnknown
}

// required lists the parameters the gateway rejects a call without, in the
// order it checks them.
func (a action) required() []string {
	switch a {
	case actBindAxb:
		return []string{"PhoneNoA", "Expiration"}
	case actUpdateSubscription:
		return []string{"SubsId", "PhoneNoX", "OperateType"}
	case actQuerySubscriptionDetail:
		return []string{"SubsId", "PhoneNoX"}
	case actUnbindSubscription:
		return []string{"SubsId", "SecretNo"}
	}
	return nil
}

// Business codes.
const (
	codeOK               = "OK"
	codeIllegalArgument  = "isv.ILLEGAL_ARGUMENT"
	codePoolKeyNotExists = "isv.POOLKEY_NOT_EXISTS"
	codeNoNotExist       = "isv.NO_NOT_EXIST"
	codeSubsNotExist     = "isv.SUBS_NOT_EXIST"
	codeForbiddenAction  = "isv.FORBIDDEN_ACTION"
	codeExpireIllegal    = "isv.EXPIRE_DATE_ILLEGAL"
	codeMobileIllegal    = "isv.MOBILE_NUMBER_ILLEGAL"
	codeBindConflict     = "isv.BIND_CONFLICT"
	codeNoAvailable      = "isv.NO_AVAILABLE_NUMBER"
)

// OperateType values of UpdateSubscription.
const (
	opUpdateNoA                = "updateNoA"
	opUpdateNoB                = "updateNoB"
	opUpdateExpire             = "updateExpire"
	opUpdateAxgGroup           = "updateAxgGroup"
	opUpdateCallRestrict       = "updateCallRestrict"
	opUpdateCallDisplayType    = "updateCallDisplayType"
	opUpdateOutId              = "updateOutId"
	opUpdateIsRecordingEnabled = "updateIsRecordingEnabled"
	opUpdateAsr                = "updateAsr"
)

// ringConfigKeys are the keys a RingConfig object may hold.
var ringConfigKeys = map[string]bool{
	"AXBRing_A": true, "AXBRing_B": true,
	"AXNRing_AB": true, "AXNRing_A": true, "AXNRing_N": true,
	"AXGRing_AB": true, "AXGRing_A": true, "AXGRing_G": true,
}

// checkRingConfig returns why a RingConfig is not a JSON object of
// ring-back tone codes under the documented keys, or "".
func checkRingConfig(v string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &m); err != nil || len(m) == 0 {
		return "RingConfig must be a non-empty JSON object of ring-back tone codes"
	}
	if k := repeatedKey(v); k != "" {
		return "RingConfig key " + quoteShort(k) + " is given twice"
	}
	for k, raw := range m {
		if !ringConfigKeys[k] {
			return "RingConfig key " + quoteShort(k) + " is not supported"
		}
		var code string
		if err := json.Unmarshal(raw, &code); err != nil || strings.TrimSpace(code) == "" {
			return "RingConfig " + k + " must be a non-empty string"
		}
	}
	return ""
}

// expirationShape is the exact form of an Expiration: Go's parser alone
// would also take fractional seconds and runs of spaces.
var expirationShape = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$`)

type resultKind uint8

const (
	resultPlain resultKind = iota
	resultBind
	resultDetail
)

// result is the business outcome of a call.
type result struct {
	code, msg string
	applied   bool // an UpdateSubscription changed (or confirmed) a binding
	kind      resultKind
	subsID    string  // resultBind
	secretNo  string  // resultBind
	extension string  // resultBind
	detail    Binding // resultDetail
}

var resultOK = result{code: codeOK, msg: "OK"}

func fail(code, msg string) result { return result{code: code, msg: msg} }

// checkPoolParams applies the "PoolKey or ProductType" rule.
func checkPoolParams(poolKey, productType string) (result, bool) {
	if poolKey != "" {
		return result{}, true
	}
	switch productType {
	case "":
		return fail(codeIllegalArgument, "PoolKey and ProductType cannot both be empty"), false
	case "AXB_170", "AXN_170", "AXN_95", "AXN_EXTENSION_REUSE":
		return result{}, true
	}
	return fail(codeIllegalArgument, "ProductType "+quoteShort(productType)+" is not supported"), false
}

// find resolves PoolKey, X and SubsId to a binding. st.mu must be held.
func (st *state) find(poolKey, x, subsID string) (*binding, result, bool) {
	var p *pool
	if poolKey != "" {
		if p = st.pools[poolKey]; p == nil {
			return nil, fail(codePoolKeyNotExists, "number pool does not exist"), false
		}
		if !p.owns(x) {
			return nil, fail(codeNoNotExist, "the X number is not in this pool"), false
		}
	} else if st.poolOwning(x) == nil {
		return nil, fail(codeNoNotExist, "the X number does not belong to this account"), false
	}
	b := st.bindings[subsID]
	if b == nil || b.PhoneNoX != x || (p != nil && b.PoolKey != poolKey) {
		return nil, fail(codeSubsNotExist, "binding does not exist or does not match the pool and X number"), false
	}
	return b, result{}, true
}

func parseBool(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// parseExpiration parses an Expiration (Beijing time) and checks that it is
// more than one minute after now.
func parseExpiration(s string, now time.Time) (time.Time, result, bool) {
	t, err := time.ParseInLocation(DateLayout, s, beijing)
	if err != nil || !expirationShape.MatchString(s) {
		return t, fail(codeExpireIllegal, "Expiration must be yyyy-MM-dd HH:mm:ss"), false
	}
	if !t.After(now.Add(time.Minute)) {
		return t, fail(codeExpireIllegal, "Expiration must be more than one minute after the current time"), false
	}
	return t, result{}, true
}

// quoteShort quotes s for a message, cut to a sane length.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// updateSubscription serves UpdateSubscription: it finds the binding, checks
// the call against it, sets what the OperateType names and reports the
// update applied.
func (s *Sim) updateSubscription(q *apiRequest, now time.Time) result {
	poolKey := q.get("PoolKey")
	if r, ok := checkPoolParams(poolKey, q.get("ProductType")); !ok {
		return r
	}
	x, op := q.get("PhoneNoX"), q.get("OperateType")

	st := &s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	b, r, ok := st.find(poolKey, x, q.get("SubsId"))
	if !ok {
		return r
	}
	if r, ok := checkUpdate(q, b, op, now.Unix()); !ok {
		return r
	}
	if r, ok := s.setOperand(q, b, x, op, now); !ok {
		return r
	}
	return s.applied(q, b, op)
}

// checkUpdate checks what an UpdateSubscription asks of the binding b
// whatever its OperateType: a supported OperateType, a live binding for the
// OperateTypes an expired binding refuses, and a well-formed RingConfig.
func checkUpdate(q *apiRequest, b *binding, op string, now int64) (result, bool) {
	switch op {
	case opUpdateNoA, opUpdateNoB, opUpdateExpire, opUpdateAxgGroup, opUpdateCallRestrict,
		opUpdateCallDisplayType, opUpdateOutId, opUpdateIsRecordingEnabled, opUpdateAsr:
	default:
		return fail(codeIllegalArgument, "OperateType "+quoteShort(op)+" is not supported"), false
	}
	if !b.live(now) && (op == opUpdateNoA || op == opUpdateNoB || op == opUpdateExpire) {
		return fail(codeForbiddenAction, op+": the binding has expired"), false
	}
	// RingConfig travels with any OperateType. Parameters the OperateType
	// does not use (an Expiration with updateNoA, ASRStatus with anything
	// but updateAsr) are ignored.
	if q.has("RingConfig") {
		if msg := checkRingConfig(q.get("RingConfig")); msg != "" {
			return fail(codeIllegalArgument, msg), false
		}
	}
	return result{}, true
}

// applied ends an UpdateSubscription that takes effect: it stores the
// RingConfig that came with it, tells Config.OnApply and answers OK.
func (s *Sim) applied(q *apiRequest, b *binding, op string) result {
	if q.has("RingConfig") {
		b.RingConfig = q.get("RingConfig")
	}
	if s.cfg.OnApply != nil {
		s.cfg.OnApply(Applied{SubsId: b.SubsId, OperateType: op, Value: q.get(valueParam[op]), At: s.clock()})
	}
	return result{code: codeOK, msg: "OK", applied: true}
}

// setOperand checks the parameter the OperateType op sets and sets it on
// the binding b. It returns the failure and false when the call is refused;
// the binding is then unchanged.
func (s *Sim) setOperand(q *apiRequest, b *binding, x, op string, now time.Time) (result, bool) {
	switch op {
	case opUpdateNoA, opUpdateNoB:
		return s.updateNumber(q, b, x, op, now.Unix())
	case opUpdateExpire:
		return updateExpire(q, b, now)
	case opUpdateAxgGroup:
		return updateAxgGroup(q, b)
	case opUpdateCallRestrict:
		return updateCallRestrict(q, b)
	case opUpdateCallDisplayType:
		return updateCallDisplayType(q, b)
	case opUpdateOutId:
		return updateOutID(q, b)
	case opUpdateIsRecordingEnabled:
		return updateIsRecordingEnabled(q, b)
	case opUpdateAsr:
		return updateAsr(q, b)
	}
	return result{}, true
}

// updateNumber sets PhoneNoA (updateNoA) or PhoneNoB (updateNoB). The number
// the binding already holds is accepted without change, or refused as a
// conflict with Config.SameValueConflicts; a number bound with the same X
// number in another live binding is a conflict.
func (s *Sim) updateNumber(q *apiRequest, b *binding, x, op string, now int64) (result, bool) {
	field, cur := "PhoneNoA", b.PhoneNoA
	if op == opUpdateNoB {
		field, cur = "PhoneNoB", b.PhoneNoB
	}
	v := q.get(field)
	if v == "" {
		return fail(codeIllegalArgument, field+" is required for "+op), false
	}
	if !validPhone(v) {
		return fail(codeMobileIllegal, field+" must be digits only: a mobile number or a landline with area code"), false
	}
	if v == cur {
		if s.cfg.SameValueConflicts {
			return fail(codeBindConflict, field+" is already bound with this X number"), false
		}
		return result{}, true
	}
	st := &s.st
	if st.conflict(x, v, b.SubsId, now) {
		return fail(codeBindConflict, field+" is already bound with this X number in another binding"), false
	}
	st.unindex(b)
	if op == opUpdateNoA {
		b.PhoneNoA = v
	} else {
		b.PhoneNoB = v
	}
	st.index(b)
	return result{}, true
}

// updateExpire sets the binding's expiry from Expiration.
func updateExpire(q *apiRequest, b *binding, now time.Time) (result, bool) {
	v := q.get("Expiration")
	if v == "" {
		return fail(codeIllegalArgument, "Expiration is required for updateExpire"), false
	}
	t, r, ok := parseExpiration(v, now)
	if !ok {
		return r, false
	}
	b.expire = t.Unix()
	b.ExpireDate = t.Format(DateLayout)
	return result{}, true
}

// updateAxgGroup sets GroupId, a positive integer.
func updateAxgGroup(q *apiRequest, b *binding) (result, bool) {
	v := q.get("GroupId")
	if v == "" {
		return fail(codeIllegalArgument, "GroupId is required for updateAxgGroup"), false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 || v[0] < '0' || v[0] > '9' {
		return fail(codeIllegalArgument, "GroupId must be a positive integer"), false
	}
	b.GroupId = v
	return result{}, true
}

// updateCallRestrict sets CallRestrict; CONTROL_CLEAR_DISABLE clears it.
func updateCallRestrict(q *apiRequest, b *binding) (result, bool) {
	switch v := q.get("CallRestrict"); v {
	case "CONTROL_AX_DISABLE", "CONTROL_BX_DISABLE":
		b.CallRestrict = v
	case "CONTROL_CLEAR_DISABLE":
		b.CallRestrict = ""
	case "":
		return fail(codeIllegalArgument, "CallRestrict is required for updateCallRestrict"), false
	default:
		return fail(codeIllegalArgument, "CallRestrict must be CONTROL_AX_DISABLE, CONTROL_BX_DISABLE or CONTROL_CLEAR_DISABLE"), false
	}
	return result{}, true
}

// updateCallDisplayType sets CallDisplayType, which can only be 1.
func updateCallDisplayType(q *apiRequest, b *binding) (result, bool) {
	switch v := q.get("CallDisplayType"); v {
	case "1":
		b.CallDisplayType = 1
	case "":
		return fail(codeIllegalArgument, "CallDisplayType is required for updateCallDisplayType"), false
	default:
		return fail(codeIllegalArgument, "CallDisplayType must be 1"), false
	}
	return result{}, true
}

// updateOutID sets OutId.
func updateOutID(q *apiRequest, b *binding) (result, bool) {
	v := q.get("OutId")
	if v == "" {
		return fail(codeIllegalArgument, "OutId is required for updateOutId"), false
	}
	b.OutId = v
	return result{}, true
}

// updateIsRecordingEnabled sets NeedRecord from IsRecordingEnabled.
func updateIsRecordingEnabled(q *apiRequest, b *binding) (result, bool) {
	v := q.get("IsRecordingEnabled")
	if v == "" {
		return fail(codeIllegalArgument, "IsRecordingEnabled is required for updateIsRecordingEnabled"), false
	}
	rec, ok := parseBool(v)
	if !ok {
		return fail(codeIllegalArgument, "IsRecordingEnabled must be true or false"), false
	}
	b.NeedRecord = rec
	return result{}, true
}

// updateAsr sets ASRStatus and, when given, ASRModelId (required to turn
// ASR on).
func updateAsr(q *apiRequest, b *binding) (result, bool) {
	v := q.get("ASRStatus")
	if v == "" {
		return fail(codeIllegalArgument, "ASRStatus is required for updateAsr"), false
	}
	on, ok := parseBool(v)
	if !ok {
		return fail(codeIllegalArgument, "ASRStatus must be true or false"), false
	}
	m := q.get("ASRModelId")
	if on && m == "" {
		return fail(codeIllegalArgument, "ASRModelId is required when ASRStatus is true"), false
	}
	b.ASRStatus = on
	if m != "" {
		b.ASRModelId = m
	}
	return result{}, true
}

// bindAxb serves BindAxb: it reads the new binding from the call, then
// picks its pool and X number and stores it.
func (s *Sim) bindAxb(q *apiRequest, now time.Time) result {
	poolKey := q.get("PoolKey")
	if r, ok := checkPoolParams(poolKey, q.get("ProductType")); !ok {
		return r
	}
	nb, exp, r, ok := newBinding(q, now)
	if !ok {
		return r
	}

	st := &s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	p, x, r, ok := st.chooseX(poolKey, q.get("PhoneNoX"), nb.PhoneNoA, nb.PhoneNoB, now.Unix())
	if !ok {
		return r
	}
	nb.PoolKey = p.key
	nb.PhoneNoX = x
	nb.SubsId = st.newSubsID()
	bd := &binding{Binding: nb, expire: exp.Unix()}
	st.bindings[nb.SubsId] = bd
	st.index(bd)
	return result{code: codeOK, msg: "OK", kind: resultBind, subsID: nb.SubsId, secretNo: x}
}

// newBinding checks the parameters of a BindAxb and returns the binding
// they describe (without pool, X number or SubsId) and its expiry.
func newBinding(q *apiRequest, now time.Time) (Binding, time.Time, result, bool) {
	a, bNo := q.get("PhoneNoA"), q.get("PhoneNoB")
	if !validPhone(a) {
		return Binding{}, time.Time{}, fail(codeMobileIllegal, "PhoneNoA must be digits only: a mobile number or a landline with area code"), false
	}
	if bNo != "" && !validPhone(bNo) {
		return Binding{}, time.Time{}, fail(codeMobileIllegal, "PhoneNoB must be digits only: a mobile number or a landline with area code"), false
	}
	exp, r, ok := parseExpiration(q.get("Expiration"), now)
	if !ok {
		return Binding{}, time.Time{}, r, false
	}
	nb := Binding{
		PhoneNoA:     a,
		PhoneNoB:     bNo,
		ExpireDate:   exp.Format(DateLayout),
		GmtCreate:    now.In(beijing).Format(DateLayout),
		OutId:        q.get("OutId"),
		ASRModelId:   q.get("ASRModelId"),
		CallRestrict: q.get("CallRestrict"),
	}
	if r, ok := readBindOptions(q, &nb); !ok {
		return Binding{}, time.Time{}, r, false
	}
	return nb, exp, result{}, true
}

// readBindOptions checks a BindAxb's optional parameters and sets them on
// nb: CallRestrict (already copied, CONTROL_CLEAR_DISABLE meaning none),
// CallDisplayType, CallTimeout (checked only), IsRecordingEnabled and
// ASRStatus.
func readBindOptions(q *apiRequest, nb *Binding) (result, bool) {
	switch nb.CallRestrict {
	case "", "CONTROL_AX_DISABLE", "CONTROL_BX_DISABLE":
	case "CONTROL_CLEAR_DISABLE":
		nb.CallRestrict = ""
	default:
		return fail(codeIllegalArgument, "CallRestrict must be CONTROL_AX_DISABLE or CONTROL_BX_DISABLE"), false
	}
	if v := q.get("CallDisplayType"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fail(codeIllegalArgument, "CallDisplayType must be a number"), false
		}
		nb.CallDisplayType = n
	}
	if v := q.get("CallTimeout"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 5 || n > 20 {
			return fail(codeIllegalArgument, "CallTimeout must be 5 to 20 seconds"), false
		}
	}
	for _, f := range [...]struct {
		name string
		dst  *bool
	}{{"IsRecordingEnabled", &nb.NeedRecord}, {"ASRStatus", &nb.ASRStatus}} {
		if q.has(f.name) {
			v, ok := parseBool(q.get(f.name))
			if !ok {
				return fail(codeIllegalArgument, f.name+" must be true or false"), false
			}
			*f.dst = v
		}
	}
	return result{}, true
}

// chooseX picks the pool and X number of a new binding of the numbers a
// and b (b may be empty): the X number asked for, which must be in the pool
// (PoolKey, else the pool owning it) and free of a live binding with a or
// b, or else a free number drawn from the pool (PoolKey, else the default
// pool). st.mu must be held.
func (st *state) chooseX(poolKey, x, a, b string, now int64) (*pool, string, result, bool) {
	var p *pool
	if poolKey != "" {
		if p = st.pools[poolKey]; p == nil {
			return nil, "", fail(codePoolKeyNotExists, "number pool does not exist"), false
		}
	}
	taken := func(x string) bool {
		return st.conflict(x, a, "", now) || b != "" && st.conflict(x, b, "", now)
	}
	if x != "" {
		if p == nil {
			p = st.poolOwning(x)
		}
		if p == nil || !p.owns(x) {
			return nil, "", fail(codeNoNotExist, "the X number is not in this pool"), false
		}
		if taken(x) {
			return nil, "", fail(codeBindConflict, "PhoneNoA or PhoneNoB is already bound with this X number"), false
		}
		return p, x, result{}, true
	}
	if p == nil {
		p = st.pools[DefaultPoolKey]
	}
	for range 64 {
		if c := p.pick(st.rng); c != "" && !taken(c) {
			return p, c, result{}, true
		}
	}
	return nil, "", fail(codeNoAvailable, "no available number in the pool"), false
}

// querySubscriptionDetail serves QuerySubscriptionDetail.
func (s *Sim) querySubscriptionDetail(q *apiRequest, now time.Time) result {
	poolKey := q.get("PoolKey")
	if r, ok := checkPoolParams(poolKey, q.get("ProductType")); !ok {
		return r
	}
	st := &s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	b, r, ok := st.find(poolKey, q.get("PhoneNoX"), q.get("SubsId"))
	if !ok {
		return r
	}
	return result{code: codeOK, msg: "OK", kind: resultDetail, detail: b.view(now.Unix())}
}

// unbindSubscription serves UnbindSubscription.
func (s *Sim) unbindSubscription(q *apiRequest, now time.Time) result {
	poolKey := q.get("PoolKey")
	if r, ok := checkPoolParams(poolKey, q.get("ProductType")); !ok {
		return r
	}
	st := &s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	b, r, ok := st.find(poolKey, q.get("SecretNo"), q.get("SubsId"))
	if !ok {
		return r
	}
	st.unindex(b)
	delete(st.bindings, b.SubsId)
	return resultOK
}

// appendResult appends the body of a business result for action: JSON, or
// XML with root <ActionResponse> when xml is set.
func appendResult(dst []byte, xml bool, action, requestID string, r result) []byte {
	e := enc{dst: dst, xml: xml}
	root := ""
	if xml {
		root = action + "Response"
	}
	e.open(root)
	e.str("RequestId", requestID)
	e.str("Code", r.code)
	e.str("Message", r.msg)
	switch r.kind {
	case resultBind:
		e.begin("SecretBindDTO")
		e.str("SubsId", r.subsID)
		e.str("SecretNo", r.secretNo)
		e.str("Extension", r.extension)
		e.end("SecretBindDTO")
	case resultDetail:
		d := &r.detail
		e.begin("SecretBindDetailDTO")
		e.str("SubsId", d.SubsId)
		e.str("PhoneNoA", d.PhoneNoA)
		e.str("PhoneNoB", d.PhoneNoB)
		e.str("PhoneNoX", d.PhoneNoX)
		e.int("Status", int64(d.Status))
		e.str("ExpireDate", d.ExpireDate)
		e.str("GmtCreate", d.GmtCreate)
		if d.GroupId != "" { // absent for a binding without a group
			group, _ := strconv.ParseInt(d.GroupId, 10, 64)
			e.int("GroupId", group)
		}
		e.bool("NeedRecord", d.NeedRecord)
		e.bool("ASRStatus", d.ASRStatus)
		if d.ASRModelId != "" {
			e.str("ASRModelId", d.ASRModelId)
		}
		if d.CallRestrict != "" {
			e.str("CallRestrict", d.CallRestrict)
		}
		if d.Extension != "" {
			e.str("Extension", d.Extension)
		}
		e.end("SecretBindDetailDTO")
	}
	e.close(root)
	return e.dst
}

// repeatedKey returns the first key that the JSON object v gives twice, or
// "" (also when v is not an object): encoding/json keeps the last value of
// a repeated key without a word.
func repeatedKey(v string) string {
	dec := json.NewDecoder(strings.NewReader(v))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := t.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}
