package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dyplsq/dyplsq/mask"
)

// OperateTypes lists the UpdateSubscription operations: the eight the API
// documents, and updateAsr (speech recognition on or off), which the API's
// current metadata lists. Each sets one field of the binding, named by
// [OperateTypeField].
var OperateTypes = append([]string(nil), operateTypes[:]...)

var operateTypes = [...]string{
	"updateNoA", "updateNoB", "updateExpire", "updateAxgGroup",
	"updateCallRestrict", "updateCallDisplayType", "updateOutId",
	"updateIsRecordingEnabled", "updateAsr",
}

var operateField = map[string]string{
	"updateNoA":                "PhoneNoA",
	"updateNoB":                "PhoneNoB",
	"updateExpire":             "Expiration",
	"updateAxgGroup":           "GroupId",
	"updateCallRestrict":       "CallRestrict",
	"updateCallDisplayType":    "CallDisplayType",
	"updateOutId":              "OutId",
	"updateIsRecordingEnabled": "IsRecordingEnabled",
	"updateAsr":                "ASRStatus",
}

// RingConfigKeys lists the keys a RingConfig object may hold: the enterprise
// ring-back tone codes of each kind of binding (AXB, AXN, AXG) and caller.
var RingConfigKeys = append([]string(nil), ringConfigKeys[:]...)

var ringConfigKeys = [...]string{
	"AXBRing_A", "AXBRing_B",
	"AXNRing_AB", "AXNRing_A", "AXNRing_N",
	"AXGRing_AB", "AXGRing_A", "AXGRing_G",
}

// ProductTypes lists the values ProductType may take.
var ProductTypes = append([]string(nil), productTypes[:]...)

var productTypes = [...]string{"AXB_170", "AXN_170", "AXN_95", "AXN_EXTENSION_REUSE"}

// CallRestricts lists the values CallRestrict may take.
var CallRestricts = append([]string(nil), callRestricts[:]...)

var callRestricts = [...]string{"CONTROL_AX_DISABLE", "CONTROL_BX_DISABLE", "CONTROL_CLEAR_DISABLE"}

// ExpirationLayout is the layout of Expiration, in Beijing time ([Beijing]).
const ExpirationLayout = "2006-01-02 15:04:05"

// MinExpirationLead is how far past the time of the call Expiration must be.
const MinExpirationLead = 60 * time.Second

// ExpirationWarnLead is how far ahead an Expiration must be for
// [Update.Warnings] to say nothing about it: one closer than this is valid
// now, but dies as isv.EXPIRE_DATE_ILLEGAL if the job waits in the queue
// until less than [MinExpirationLead] is left.
const ExpirationWarnLead = 10 * time.Minute

// Beijing is the time zone Expiration is written in (UTC+8, no daylight
// saving time).
var Beijing = time.FixedZone("CST", 8*3600)

// OperateTypeField returns the field an OperateType sets ("updateNoA" →
// "PhoneNoA"), or "" for an unknown OperateType.
func OperateTypeField(operateType string) string { return operateField[operateType] }

// Field returns the field u.OperateType sets (for example "PhoneNoA"), or ""
// if the OperateType is unknown.
func (u Update) Field() string { return operateField[u.OperateType] }

// Problem is one reason an [Update] is invalid.
type Problem struct {
	Field  string // the field at fault, as named in [KnownColumns]
	Reason string // what is wrong and how to fix it; never a full phone number
}

// String returns "Field: reason".
func (p Problem) String() string { return p.Field + ": " + p.Reason }

// ValidationError lists every problem of an invalid [Update], in the order of
// [KnownColumns].
type ValidationError struct {
	Problems []Problem
}

// Error returns the problems as "Field: reason; Field: reason".
func (e *ValidationError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}

// Validate checks u as it will be sent to the API at time now and returns nil
// or a [*ValidationError] that lists every problem at once. It does not trim
// values: call [Update.Normalize] first (the [Producer] and [NewTask] do).
//
// The rules: every value is valid UTF-8 without U+FFFD (the mark of text
// already damaged by a wrong decoding); SubsId, PhoneNoX and OperateType are
// required; PoolKey or ProductType is required; OperateType is one of
// [OperateTypes]; the field the OperateType sets is present; SubsId is
// digits; phone numbers (PhoneNoX, PhoneNoA, PhoneNoB) are digits only, a
// mobile number (1 and 10 more digits) or a landline with its area code (0
// first, 10 to 12 digits), and with ProductType AXN_95 PhoneNoX may also be
// a 95 number (95 and 3 to 10 more digits); Expiration is exactly
// "yyyy-MM-dd HH:mm:ss" in Beijing time and more than 60 s after now;
// GroupId is a positive integer; CallRestrict is one of [CallRestricts];
// CallDisplayType is 1; IsRecordingEnabled and ASRStatus are true or false;
// updateAsr with ASRStatus true needs ASRModelId; RingConfig is a JSON
// object whose keys are among [RingConfigKeys], each with a string code;
// ProductType, if set, is one of [ProductTypes].
//
// Values given for fields the OperateType does not use ([Update.Unused])
// are not checked: they are never sent ([NewTask] leaves them out) and
// [Update.Warnings] names them. With an unknown OperateType every value is
// checked.
func (u Update) Validate(now time.Time) error {
	v := &validator{u: &u, damaged: map[string]bool{}, unused: map[string]bool{}}
	// Text the API would receive damaged: nothing else is said about it.
	for _, f := range allColumns {
		if r := textProblem(*FieldValue(&u, f)); r != "" {
			v.add(f, "%s", r)
			v.damaged[f] = true
		}
	}
	for _, f := range u.Unused() {
		v.unused[f] = true
	}
	v.binding()
	v.operation()
	v.values(now)
	ps := v.ps
	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return slices.Index(allColumns, a.Field) - slices.Index(allColumns, b.Field)
	})
	return &ValidationError{Problems: ps}
}

// validator collects the problems of one [Update.Validate].
type validator struct {
	u       *Update
	ps      []Problem
	damaged map[string]bool // fields whose text the API would receive damaged
	unused  map[string]bool // fields the OperateType does not use
}

func (v *validator) add(field, format string, args ...any) {
	v.ps = append(v.ps, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// check reports whether field f has a value to check: set, used by the
// OperateType, and not damaged.
func (v *validator) check(f string) bool {
	return !v.damaged[f] && !v.unused[f] && *FieldValue(v.u, f) != ""
}

// binding checks the fields naming the binding: PoolKey, ProductType,
// SubsId and PhoneNoX.
func (v *validator) binding() {
	u := v.u
	if u.PoolKey == "" && u.ProductType == "" {
		v.add("PoolKey", "required when ProductType is empty: set PoolKey (the number pool key, e.g. FC123456) or ProductType")
	}
	if v.check("ProductType") && !slices.Contains(productTypes[:], u.ProductType) {
		v.add("ProductType", "must be one of %s; got %s", strings.Join(productTypes[:], ", "), quote(u.ProductType))
	}

	switch {
	case u.SubsId == "":
		v.add("SubsId", "required: the binding id that BindAxb (or BindAxn, ...) returned")
	case v.damaged["SubsId"]:
	case !allDigits(u.SubsId):
		c, pos := firstNonDigit(u.SubsId)
		v.add("SubsId", "must be digits only (the binding id that BindAxb returned); got %d characters, first non-digit %s at position %d%s",
			utf8.RuneCountInString(u.SubsId), c, pos, spreadsheetHint(u.SubsId))
	}

	switch {
	case u.PhoneNoX == "":
		v.add("PhoneNoX", "required: the X number of the binding")
	case v.damaged["PhoneNoX"]:
	case u.ProductType == "AXN_95" && strings.HasPrefix(u.PhoneNoX, "95") && allDigits(u.PhoneNoX):
		if n := len(u.PhoneNoX); n < 5 || n > 12 {
			v.add("PhoneNoX", "a 95 number must be 95 and 3 to 10 more digits; got %d digits %s", n, quote(mask.Stars(u.PhoneNoX)))
		}
	default:
		if r := phoneProblem(u.PhoneNoX); r != "" {
			if strings.HasPrefix(u.PhoneNoX, "95") && allDigits(u.PhoneNoX) {
				r += "; a 95 X number is accepted with ProductType AXN_95"
			}
			v.add("PhoneNoX", "%s", r)
		}
	}
}

// operation checks OperateType and that the field it updates is set.
func (v *validator) operation() {
	u := v.u
	need := u.Field()
	switch {
	case u.OperateType == "":
		v.add("OperateType", "required: one of %s", strings.Join(operateTypes[:], ", "))
	case v.damaged["OperateType"]:
	case need == "":
		hint := ""
		for _, op := range operateTypes {
			if strings.EqualFold(op, u.OperateType) {
				hint = fmt.Sprintf(" (did you mean %s? OperateType is case-sensitive)", op)
			}
		}
		v.add("OperateType", "must be one of %s; got %s%s", strings.Join(operateTypes[:], ", "), quote(u.OperateType), hint)
	case *FieldValue(u, need) == "":
		v.add(need, "required when OperateType is %s%s", u.OperateType, neededHint(need))
	}
}

// values checks the values of the fields the OperateType uses.
func (v *validator) values(now time.Time) {
	u := v.u
	for _, f := range []string{"PhoneNoA", "PhoneNoB"} {
		if v.check(f) {
			if r := phoneProblem(*FieldValue(u, f)); r != "" {
				v.add(f, "%s", r)
			}
		}
	}
	if v.check("Expiration") {
		if r := expirationProblem(u.Expiration, now); r != "" {
			v.add("Expiration", "%s", r)
		}
	}
	if v.check("GroupId") {
		if r := groupIDProblem(u.GroupId); r != "" {
			v.add("GroupId", "%s", r)
		}
	}
	if v.check("CallRestrict") && !slices.Contains(callRestricts[:], u.CallRestrict) {
		v.add("CallRestrict", "must be one of %s; got %s", strings.Join(callRestricts[:], ", "), quote(u.CallRestrict))
	}
	if v.check("CallDisplayType") && u.CallDisplayType != "1" {
		v.add("CallDisplayType", "must be 1 (both sides see the X number; the API accepts no other value); got %s%s",
			quote(u.CallDisplayType), spreadsheetHint(u.CallDisplayType))
	}
	for _, f := range []string{"IsRecordingEnabled", "ASRStatus"} {
		if x := *FieldValue(u, f); v.check(f) && x != "true" && x != "false" {
			v.add(f, "must be true or false; got %s", quote(x))
		}
	}
	if u.OperateType == "updateAsr" && u.ASRStatus == "true" && u.ASRModelId == "" {
		v.add("ASRModelId", "required when OperateType is updateAsr and ASRStatus is true: the id of the speech recognition model to use")
	}
	if v.check("RingConfig") {
		if r := ringConfigProblem(u.RingConfig); r != "" {
			v.add("RingConfig", "%s", r)
		}
	}
}

// commonFields are used by every OperateType: the binding, the operation,
// and RingConfig, which the API takes with any of them.
var commonFields = [...]string{"PoolKey", "ProductType", "SubsId", "PhoneNoX", "OperateType", "RingConfig"}

// Unused returns the API fields set in u that its OperateType does not use,
// in the order of [Fields]: an updateNoA row carrying an Expiration, say.
// The API ignores them; [NewTask] leaves them out of the payload and
// [Update.Warnings] names them. ASRModelId belongs to updateAsr. With an
// unknown OperateType it returns nil.
func (u Update) Unused() []string {
	need := u.Field()
	if need == "" {
		return nil
	}
	var out []string
	for _, f := range apiFields {
		if *FieldValue(&u, f) == "" || f == need || slices.Contains(commonFields[:], f) ||
			(f == "ASRModelId" && u.OperateType == "updateAsr") {
			continue
		}
		out = append(out, f)
	}
	return out
}

// DropUnused clears the fields [Update.Unused] lists.
func (u *Update) DropUnused() {
	for _, f := range u.Unused() {
		*FieldValue(u, f) = ""
	}
}

// Warnings returns what is worth knowing about a valid u at time now
// without making it invalid: fields its OperateType does not use (left out
// of the call), and an Expiration less than [ExpirationWarnLead] ahead,
// which dies as isv.EXPIRE_DATE_ILLEGAL if the job waits in the queue until
// less than [MinExpirationLead] is left. Reasons never hold a whole phone
// number.
func (u Update) Warnings(now time.Time) []Problem {
	var ws []Problem
	for _, f := range u.Unused() {
		ws = append(ws, Problem{Field: f, Reason: fmt.Sprintf("not used by OperateType %s: left out of the API call (which ignores it)", u.OperateType)})
	}
	if u.Field() == "Expiration" && u.Expiration != "" {
		t, err := time.ParseInLocation(ExpirationLayout, u.Expiration, Beijing)
		if d := t.Sub(now); err == nil && d > MinExpirationLead && d < ExpirationWarnLead {
			ws = append(ws, Problem{Field: "Expiration", Reason: fmt.Sprintf(
				"only %s ahead: if the job waits in the queue until less than 60 s is left, the API refuses it (isv.EXPIRE_DATE_ILLEGAL); set it at least %s ahead",
				d.Round(time.Second), ExpirationWarnLead)})
		}
	}
	return ws
}

// textProblem returns why v cannot reach the API intact, or "": bytes that
// are not UTF-8 would become U+FFFD in the JSON payload, and a U+FFFD
// already there is text an earlier conversion damaged.
func textProblem(v string) string {
	if !utf8.ValidString(v) {
		pos := 0
		for i := 0; i < len(v); {
			r, size := utf8.DecodeRuneInString(v[i:])
			if r == utf8.RuneError && size == 1 {
				return fmt.Sprintf("not valid UTF-8 (byte 0x%02X at byte %d): the text was written in another encoding, such as GBK; save the file as UTF-8 (Excel: \"CSV UTF-8\"), or decode it before enqueueing", v[i], pos+1)
			}
			i += size
			pos += size
		}
	}
	if strings.ContainsRune(v, utf8.RuneError) {
		return "holds U+FFFD (\ufffd), the mark of characters lost by an earlier conversion from another encoding: fix the text at its source"
	}
	return ""
}

// neededHint says what a missing OperateType field should hold.
func neededHint(field string) string {
	switch field {
	case "PhoneNoA", "PhoneNoB":
		return " (the new number, digits only)"
	case "Expiration":
		return ` (the new expiry, "yyyy-MM-dd HH:mm:ss" Beijing time)`
	case "GroupId":
		return " (the number group id)"
	case "CallRestrict":
		return " (one of " + strings.Join(callRestricts[:], ", ") + ")"
	case "CallDisplayType":
		return " (1)"
	case "OutId":
		return " (the new OutId; the API cannot set an empty one)"
	case "IsRecordingEnabled", "ASRStatus":
		return " (true or false)"
	}
	return ""
}

// spreadsheetHint says how a spreadsheet may have changed a value that
// should be digits, or "" if it shows no such sign. It starts with "; ".
func spreadsheetHint(v string) string {
	switch {
	case scientific.MatchString(v):
		return "; it is in scientific notation, as Excel shows a long number: the digits it dropped cannot be recovered; format the column as Text and enter the numbers again"
	case strings.HasPrefix(v, "'"):
		return "; drop the leading ' (the mark a spreadsheet uses to keep a number as text)"
	case strings.HasPrefix(v, "=\"") && strings.HasSuffix(v, "\""):
		return "; the =\"...\" form is an Excel formula that keeps a number as text: write only the digits inside the quotes"
	case decimalZero.MatchString(v):
		return "; it ends in .0, as a spreadsheet writes a number cell: format the column as Text, or remove the .0"
	}
	return ""
}

var (
	scientific  = regexp.MustCompile(`^[0-9](\.[0-9]+)?[eE][+]?[0-9]+$`)
	decimalZero = regexp.MustCompile(`^[0-9]+\.0+$`)
)

// phoneProblem returns why v is not a phone number the API accepts, or "".
// The reason shows v only masked.
func phoneProblem(v string) string {
	const want = "mobile 1xxxxxxxxxx, or landline 0 + area code + number, 10 to 12 digits"
	n := utf8.RuneCountInString(v)
	if !allDigits(v) {
		hint := spreadsheetHint(v)
		switch {
		case hint != "":
		case strings.HasPrefix(v, "+86") || strings.HasPrefix(v, "0086"):
			hint = "; drop the country code"
		case strings.ContainsAny(v, "-– "):
			hint = "; remove hyphens and spaces"
		case strings.ContainsFunc(v, func(r rune) bool { return r >= '０' && r <= '９' }):
			hint = "; use ASCII digits, not full-width ones"
		}
		c, pos := firstNonDigit(v)
		return fmt.Sprintf("must be digits only (%s, no hyphen); got %s, %d characters, first non-digit %s at position %d%s",
			want, quote(mask.Stars(v)), n, c, pos, hint)
	}
	switch v[0] {
	case '1':
		if n != 11 {
			hint := ""
			if n == 10 {
				hint = "; if it is a landline, a spreadsheet may have dropped its leading 0: write it with the 0, in a column formatted as Text"
			}
			return fmt.Sprintf("a mobile number must be 11 digits (1xxxxxxxxxx); got %d digits %s%s", n, quote(mask.Stars(v)), hint)
		}
	case '0':
		if n < 10 || n > 12 {
			return fmt.Sprintf("a landline number must be 10 to 12 digits including its area code (0xx or 0xxx); got %d digits %s", n, quote(mask.Stars(v)))
		}
	default:
		hint := ""
		if n >= 9 && n <= 11 {
			hint = "; if it is a landline, a spreadsheet may have dropped its leading 0: write it with the 0, in a column formatted as Text"
		}
		return fmt.Sprintf("must start with 1 (mobile) or 0 (landline with area code); got %s, %d digits%s", quote(mask.Stars(v)), n, hint)
	}
	return ""
}

// groupIDProblem returns why v is not a GroupId the API accepts, or "".
func groupIDProblem(v string) string {
	if !allDigits(v) {
		return fmt.Sprintf("must be a positive integer (the number group id, e.g. 1234); got %s%s", quote(v), spreadsheetHint(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil:
		return fmt.Sprintf("must be a positive integer of at most %d; got %s", int64(math.MaxInt64), quote(v))
	case n == 0:
		return "must be a positive integer (the number group id, e.g. 1234); got 0"
	}
	return ""
}

// ringConfigProblem returns why v is not a RingConfig the API accepts, or
// "": a JSON object of ring-back tone codes keyed by [RingConfigKeys].
func ringConfigProblem(v string) string {
	example := `{"AXBRing_A":"100000001","AXBRing_B":"100000001"}`
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &m); err != nil || m == nil {
		return fmt.Sprintf("must be a JSON object of ring-back tone codes, e.g. %s; got %s", example, quote(v))
	}
	if k := repeatedKey(v); k != "" {
		return fmt.Sprintf("must be a JSON object of ring-back tone codes, e.g. %s: key %s given twice", example, quote(k))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var bad []string
	for _, k := range keys {
		if !slices.Contains(ringConfigKeys[:], k) {
			bad = append(bad, fmt.Sprintf("unknown key %s (known keys: %s)", quote(k), strings.Join(ringConfigKeys[:], ", ")))
			continue
		}
		var code string
		if err := json.Unmarshal(m[k], &code); err != nil || trimSpace(code) == "" {
			bad = append(bad, fmt.Sprintf("%s must be a non-empty string (the tone code, e.g. \"100000001\")", k))
		}
	}
	if len(keys) == 0 {
		bad = append(bad, "the object is empty")
	}
	if len(bad) > 0 {
		return "must be a JSON object of ring-back tone codes, e.g. " + example + ": " + strings.Join(bad, "; ")
	}
	return ""
}

// expirationProblem returns why v is not a valid Expiration at now, or "".
// The format is exact: Go's parser would also take fractional seconds and
// runs of spaces, which the API's documented format does not allow.
func expirationProblem(v string, now time.Time) string {
	t, err := time.ParseInLocation(ExpirationLayout, v, Beijing)
	if err != nil || !exactExpiration.MatchString(v) {
		hint := ""
		switch {
		case strings.Contains(v, "T") || strings.Contains(v, "/"):
			hint = `; use a space between date and time and "-" between date parts`
		case strings.Contains(v, "  "):
			hint = "; use one space between date and time"
		case fractional.MatchString(v):
			hint = "; drop the fractional seconds (" + v[strings.LastIndexByte(v, '.'):] + ")"
		case dateSerial.MatchString(v):
			hint = "; a spreadsheet wrote the date as a number (days since 1900): format the column as Text, or with the custom format yyyy-mm-dd hh:mm:ss"
		default:
			if pe := (*time.ParseError)(nil); errors.As(err, &pe) && strings.Contains(pe.Message, "out of range") {
				hint = "; " + strings.TrimPrefix(pe.Message, ": ")
			}
		}
		return fmt.Sprintf(`must be "yyyy-MM-dd HH:mm:ss" in Beijing time, e.g. %q; got %s%s`,
			now.Add(24*time.Hour).In(Beijing).Format(ExpirationLayout), quote(v), hint)
	}
	if d := t.Sub(now); d <= MinExpirationLead {
		when := "in the past"
		if d > 0 {
			when = "only " + d.Round(time.Second).String() + " ahead"
		}
		return fmt.Sprintf("must be more than 60 s in the future (now is %s Beijing time); got %s, %s",
			now.In(Beijing).Format(ExpirationLayout), v, when)
	}
	return ""
}

var (
	exactExpiration = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$`)
	fractional      = regexp.MustCompile(`:[0-9]{2}\.[0-9]+$`)
	dateSerial      = regexp.MustCompile(`^[0-9]{5}(\.[0-9]+)?$`)
)

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// firstNonDigit returns the first rune of s that is not an ASCII digit,
// quoted, and its 1-based position in runes.
func firstNonDigit(s string) (string, int) {
	pos := 0
	for _, r := range s {
		pos++
		if r < '0' || r > '9' {
			return strconv.QuoteRune(r), pos
		}
	}
	return "", 0
}

// quote quotes v for a reason, shortening long values and masking every
// phone number in it (see [mask.Text]), in case a number landed in the
// wrong column. It masks again once quoted: an escape such as \x19 can
// join digits into the shape of a number.
func quote(v string) string {
	const max = 40
	v = mask.Text(v)
	if r := []rune(v); len(r) > max {
		v = string(r[:max]) + "…"
	}
	return mask.Text(strconv.Quote(v))
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
