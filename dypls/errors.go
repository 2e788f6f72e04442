package dypls

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dyplsq/dyplsq/dypls/errclass"
	"github.com/dyplsq/dyplsq/mask"
)

// Class says what an error means for the job that got it and for the
// worker that made the call. It and the names below are declared in
// [errclass], which programs that only read codes (the enqueue CLI) import
// without linking the SDK; they are repeated here so that callers of the
// client need one import.
type Class = errclass.Class

// The classes, from the least to the most severe for the fleet; see
// [errclass.Transient].
const (
	Transient = errclass.Transient
	Throttled = errclass.Throttled
	Permanent = errclass.Permanent
	Systemic  = errclass.Systemic
)

// Codes that dyplsq gives to failures the API itself did not name; see
// [errclass.CodeTimeout].
const (
	CodeOK                = errclass.CodeOK
	CodeTimeout           = errclass.CodeTimeout
	CodeConnectionRefused = errclass.CodeConnectionRefused
	CodeConnectFailed     = errclass.CodeConnectFailed
	CodeConnectionDropped = errclass.CodeConnectionDropped
	CodeTransport         = errclass.CodeTransport
	CodeEmptyResponse     = errclass.CodeEmptyResponse
	CodeUnreadable        = errclass.CodeUnreadable
	CodeHTTPPrefix        = errclass.CodeHTTPPrefix
	CodeNotCalled         = errclass.CodeNotCalled
	CodeCredentials       = errclass.CodeCredentials
)

// Classify returns the class of an API, gateway or transport code; see
// [errclass.Classify].
func Classify(code string) Class { return errclass.Classify(code) }

// Error is the one error type every failed call returns. Everything it holds
// is masked: phone numbers never reach a log or Redis through it.
type Error struct {
	Action     string // API action, e.g. UpdateSubscription
	Code       string // API code, gateway code, or one of the Code* transport codes
	Message    string // masked, shortened message
	RequestID  string // Alibaba RequestId, the handle support asks for; "" when none
	HTTPStatus int    // 0 when no HTTP answer was read
	Ambiguous  bool   // the server may have applied the call
	Class      Class
}

// Error renders the error on one line: action, code, message, RequestId,
// status and class.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("dypls: ")
	if e.Action != "" {
		b.WriteString(e.Action)
		b.WriteString(": ")
	}
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	b.WriteString(" (")
	if e.RequestID != "" {
		b.WriteString("RequestId ")
		b.WriteString(e.RequestID)
		b.WriteString(", ")
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d, ", e.HTTPStatus)
	}
	b.WriteString(e.Class.String())
	if e.Ambiguous {
		b.WriteString(", ambiguous")
	}
	b.WriteString(")")
	return b.String()
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &dypls.Error{Code: "isv.BIND_CONFLICT"}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// maxMessage bounds a stored message: SignatureDoesNotMatch carries the
// whole string-to-sign, and non-JSON replies a whole HTML page.
const maxMessage = 512

func newError(action, code, msg, requestID string, status int, ambiguous bool) *Error {
	// Mask first, then shorten: a cut must never leave part of a number.
	msg = mask.Text(strings.Join(strings.Fields(msg), " "))
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return &Error{
		Action:     action,
		Code:       code,
		Message:    msg,
		RequestID:  requestID,
		HTTPStatus: status,
		Ambiguous:  ambiguous || errclass.MayHaveApplied(code),
		Class:      Classify(code),
	}
}
