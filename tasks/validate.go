package tasks

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// OperateTypes lists the eight documented UpdateSubscription operations. Each
// sets one field of the binding, named by [OperateTypeField].
var OperateTypes = append([]string(nil), operateTypes[:]...)

var operateTypes = [...]string{
	"updateNoA", "updateNoB", "updateExpire", "updateAxgGroup",
	"updateCallRestrict", "updateCallDisplayType", "updateOutId",
	"updateIsRecordingEnabled",
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
// The rules: SubsId, PhoneNoX and OperateType are required; PoolKey or
// ProductType is required; OperateType is one of [OperateTypes]; the field
// the OperateType sets is present; SubsId is digits; phone numbers
// (PhoneNoX, PhoneNoA, PhoneNoB) are digits only, a mobile number (1 and 10
// more digits) or a landline with its area code (0 first, 10 to 12 digits);
// Expiration is "yyyy-MM-dd HH:mm:ss" in Beijing time and more than 60 s
// after now; CallRestrict is one of [CallRestricts]; CallDisplayType is 1;
// IsRecordingEnabled and ASRStatus are true or false; ProductType, if set, is
// one of [ProductTypes]. Values given for fields the OperateType does not use
// are checked the same way, since they are sent too.
func (u Update) Validate(now time.Time) error {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
	}

	if u.PoolKey == "" && u.ProductType == "" {
		add("PoolKey", "required when ProductType is empty: set PoolKey (the number pool key, e.g. FC123456) or ProductType")
	}
	if u.ProductType != "" && !slices.Contains(productTypes[:], u.ProductType) {
		add("ProductType", "must be one of %s; got %s", strings.Join(productTypes[:], ", "), quote(u.ProductType))
	}

	switch {
	case u.SubsId == "":
		add("SubsId", "required: the binding id that BindAxb (or BindAxn, ...) returned")
	case !allDigits(u.SubsId):
		c, pos := firstNonDigit(u.SubsId)
		add("SubsId", "must be digits only (the binding id that BindAxb returned); got %d characters, first non-digit %s at position %d",
			utf8.RuneCountInString(u.SubsId), c, pos)
	}

	if u.PhoneNoX == "" {
		add("PhoneNoX", "required: the X number of the binding")
	} else if r := phoneProblem(u.PhoneNoX); r != "" {
		add("PhoneNoX", "%s", r)
	}

	need := u.Field()
	switch {
	case u.OperateType == "":
		add("OperateType", "required: one of %s", strings.Join(operateTypes[:], ", "))
	case need == "":
		hint := ""
		for _, op := range operateTypes {
			if strings.EqualFold(op, u.OperateType) {
				hint = fmt.Sprintf(" (did you mean %s? OperateType is case-sensitive)", op)
			}
		}
		add("OperateType", "must be one of %s; got %s%s", strings.Join(operateTypes[:], ", "), quote(u.OperateType), hint)
	case *FieldValue(&u, need) == "":
		add(need, "required when OperateType is %s%s", u.OperateType, neededHint(need))
	}

	for _, f := range []string{"PhoneNoA", "PhoneNoB"} {
		if v := *FieldValue(&u, f); v != "" {
			if r := phoneProblem(v); r != "" {
				add(f, "%s", r)
			}
		}
	}
	if u.Expiration != "" {
		if r := expirationProblem(u.Expiration, now); r != "" {
			add("Expiration", "%s", r)
		}
	}
	if u.CallRestrict != "" && !slices.Contains(callRestricts[:], u.CallRestrict) {
		add("CallRestrict", "must be one of %s; got %s", strings.Join(callRestricts[:], ", "), quote(u.CallRestrict))
	}
	if u.CallDisplayType != "" && u.CallDisplayType != "1" {
		add("CallDisplayType", "must be 1 (both sides see the X number; the API accepts no other value); got %s", quote(u.CallDisplayType))
	}
	for _, f := range []string{"IsRecordingEnabled", "ASRStatus"} {
		if v := *FieldValue(&u, f); v != "" && v != "true" && v != "false" {
			add(f, "must be true or false; got %s", quote(v))
		}
	}

	if len(ps) == 0 {
		return nil
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return slices.Index(allColumns, a.Field) - slices.Index(allColumns, b.Field)
	})
	return &ValidationError{Problems: ps}
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
	case "IsRecordingEnabled":
		return " (true or false)"
	}
	return ""
}

// phoneProblem returns why v is not a phone number the API accepts, or "".
// The reason shows v only masked.
func phoneProblem(v string) string {
	const want = "mobile 1xxxxxxxxxx, or landline 0 + area code + number, 10 to 12 digits"
	n := utf8.RuneCountInString(v)
	if !allDigits(v) {
		hint := ""
		switch {
		case strings.HasPrefix(v, "+86") || strings.HasPrefix(v, "0086"):
			hint = "; drop the country code"
		case strings.ContainsAny(v, "-– "):
			hint = "; remove hyphens and spaces"
		case strings.ContainsFunc(v, func(r rune) bool { return r >= '０' && r <= '９' }):
			hint = "; use ASCII digits, not full-width ones"
		}
		c, pos := firstNonDigit(v)
		return fmt.Sprintf("must be digits only (%s, no hyphen); got %s, %d characters, first non-digit %s at position %d%s",
			want, quote(mask(v)), n, c, pos, hint)
	}
	switch v[0] {
	case '1':
		if n != 11 {
			return fmt.Sprintf("a mobile number must be 11 digits (1xxxxxxxxxx); got %d digits %s", n, quote(mask(v)))
		}
	case '0':
		if n < 10 || n > 12 {
			return fmt.Sprintf("a landline number must be 10 to 12 digits including its area code (0xx or 0xxx); got %d digits %s", n, quote(mask(v)))
		}
	default:
		return fmt.Sprintf("must start with 1 (mobile) or 0 (landline with area code); got %s, %d digits", quote(mask(v)), n)
	}
	return ""
}

// expirationProblem returns why v is not a valid Expiration at now, or "".
func expirationProblem(v string, now time.Time) string {
	t, err := time.ParseInLocation(ExpirationLayout, v, Beijing)
	if err != nil || len(v) != len(ExpirationLayout) {
		hint := ""
		if strings.Contains(v, "T") || strings.Contains(v, "/") {
			hint = `; use a space between date and time and "-" between date parts`
		} else if pe := (*time.ParseError)(nil); errors.As(err, &pe) && strings.Contains(pe.Message, "out of range") {
			hint = "; " + strings.TrimPrefix(pe.Message, ": ")
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

// mask hides the middle of a value that may be a phone number, keeping the
// first 3 and last 4 characters ("13812345678" → "138****5678"), so that a
// reason never holds a whole number. Values shorter than 8 characters are
// hidden entirely.
func mask(v string) string {
	r := []rune(v)
	if len(r) < 8 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:3]) + strings.Repeat("*", len(r)-7) + string(r[len(r)-4:])
}

// quote quotes v for a reason, shortening long values and masking every
// phone-number-shaped run of digits in it (see [maskNumbers]), in case a
// number landed in the wrong column.
func quote(v string) string {
	const max = 40
	v = maskNumbers(v)
	if r := []rune(v); len(r) > max {
		v = string(r[:max]) + "…"
	}
	return strconv.Quote(v)
}

// maskNumbers masks each run of 10 to 12 ASCII digits starting with 0 or 1
// in s, the shape of a phone number; longer runs (ids) stay whole.
func maskNumbers(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			b.WriteByte(s[i])
			i++
			continue
		}
		run := s[i:j]
		if n := len(run); n >= 10 && n <= 12 && (run[0] == '0' || run[0] == '1') {
			run = mask(run)
		}
		b.WriteString(run)
		i = j
	}
	return b.String()
}
