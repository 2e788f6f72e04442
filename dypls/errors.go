package dypls

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Class says what an error means for the job that got it and for the
// worker that made the call.
type Class int

// The classes, from the least to the most severe for the fleet.
const (
	// Transient failures may succeed later: retry with exponential backoff,
	// counting the attempt.
	Transient Class = iota
	// Throttled answers mean the provider's quota was exceeded: retry after a
	// short jittered delay without counting an attempt.
	Throttled
	// Permanent failures concern this job only and will fail again: the job
	// is dead at once.
	Permanent
	// Systemic failures would fail every job (credentials, account,
	// permission, clock): the worker halts instead of burning through jobs.
	Systemic
)

var classNames = [...]string{"transient", "throttled", "permanent", "systemic"}

// String returns the lower-case class name used in logs, metrics and records.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Codes that dyplsq gives to failures the API itself did not name: transport
// problems and replies that could not be read. They are classified like any
// other code.
const (
	CodeOK                = "OK"
	CodeTimeout           = "Transport.Timeout"           // no answer within the call timeout: may have been applied
	CodeConnectionRefused = "Transport.ConnectionRefused" // nothing listens: certainly not applied
	CodeConnectFailed     = "Transport.ConnectFailed"     // the connection could not be made: not applied
	CodeConnectionDropped = "Transport.ConnectionDropped" // the connection closed before the answer: may have been applied
	CodeTransport         = "Transport.Error"             // any other transport failure
	CodeEmptyResponse     = "Response.Empty"              // a 2xx without a body or without a Code
	CodeUnreadable        = "Response.Unreadable"         // a body that is not the expected JSON
	CodeHTTPPrefix        = "HTTP."                       // "HTTP.502": an error status without a code in the body
	CodeNotCalled         = "Client.Canceled"             // the context ended before the call was made
)

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
	msg = Mask(strings.Join(strings.Fields(msg), " "))
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
		Ambiguous:  ambiguous,
		Class:      Classify(code),
	}
}
