// Package errclass is the vocabulary of Dyplsapi failures: the classes that
// decide a job's fate and the table that gives every API, gateway and
// transport code its class. It imports nothing, so the enqueue command reads
// codes without linking the Alibaba Cloud SDK; package dypls repeats these
// names for the client's callers.
package errclass

import (
	"fmt"
	"strings"
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
	CodeCredentials       = "Credentials.Unavailable"     // the credentials source handed out none: not called
)

// codeClasses is the one classification table. It covers every code of the
// Dyplsapi error documentation and of the POP gateway; where the two
// disagree, account and credential codes are systemic, since every job
// would fail the same way. Classify handles what is not listed.
var codeClasses = map[string]Class{
	// Throttling: business flow control and gateway quota.
	"isv.FLOW_LIMIT":  Throttled,
	"Throttling":      Throttled,
	"Throttling.User": Throttled,
	"Throttling.Api":  Throttled,

	// Transient: the provider or the network failed; the same call may work later.
	"isp.SYSTEM_ERROR":       Transient,
	"isp.UNKNOWN_ERR_CODE":   Transient,
	"isp.DAO_EXCEPTION":      Transient,
	"isp.VENDOR_UNAVAILABLE": Transient,
	"isp.GATEWAY_ERROR":      Transient,
	"isv.PARTNER_NOT_EXIST":  Transient, // documented advice: retry later
	"isv.UPDATE_CONFLICT":    Transient, // concurrent modification of the binding
	"isv.VENDOR_BIND_FAILED": Transient, // carrier failed; bounded by the attempt budget
	"ServiceUnavailable":     Transient,
	"InternalError":          Transient,
	"SignatureNonceUsed":     Transient, // every attempt signs with a new nonce
	CodeTimeout:              Transient,
	CodeConnectionRefused:    Transient,
	CodeConnectFailed:        Transient,
	CodeConnectionDropped:    Transient,
	CodeTransport:            Transient,
	CodeEmptyResponse:        Transient,
	CodeUnreadable:           Transient,
	CodeNotCalled:            Transient,

	// Permanent: this job's parameters or binding are wrong; retrying cannot help.
	"isv.BIND_CONFLICT":         Permanent,
	"isv.NO_NOT_EXIST":          Permanent,
	"isv.SUBS_NOT_EXIST":        Permanent,
	"isv.ILLEGAL_ARGUMENT":      Permanent,
	"isv.INVALID_PARAMETERS":    Permanent,
	"isv.MOBILE_NUMBER_ILLEGAL": Permanent,
	"isv.EXPIRE_DATE_ILLEGAL":   Permanent,
	"isv.FORBIDDEN_ACTION":      Permanent,
	"isv.POOLKEY_NOT_EXISTS":    Permanent,
	"isv.SUBS_NOT_BELONG":       Permanent,
	"isv.NO_USED_BY_OTHERS":     Permanent,
	"isv.NO_AVAILABLE_NUMBER":   Permanent,
	"MissingParameter":          Permanent,
	"InvalidParameter":          Permanent,

	// Systemic: every job would fail the same way until someone fixes the
	// account, the credentials, the permissions or the clock.
	"isp.RAM_PERMISSION_DENY":                    Systemic,
	"Forbidden.RAM":                              Systemic,
	"Forbidden.RiskControl":                      Systemic,
	"Forbidden.AccessKeyDisabled":                Systemic,
	"isv.OUT_OF_SERVICE":                         Systemic,
	"isv.PRODUCT_UN_SUBSCRIPT":                   Systemic,
	"isv.PRODUCT_UNSUBSCRIBE":                    Systemic,
	"isv.ACCOUNT_NOT_EXISTS":                     Systemic,
	"isv.ACCOUNT_ABNORMAL":                       Systemic,
	"isv.PARTNER_IS_CLOSED":                      Systemic,
	"InvalidAccessKeyId.NotFound":                Systemic,
	"InvalidAccessKeyId.Inactive":                Systemic,
	"InvalidAccessKeyId":                         Systemic,
	"SignatureDoesNotMatch":                      Systemic,
	"IncompleteSignature":                        Systemic,
	"InvalidTimeStamp.Expired":                   Systemic,
	"InvalidTimeStamp.Format":                    Systemic,
	"InvalidSecurityToken.Expired":               Systemic,
	"InvalidSecurityToken.Malformed":             Systemic,
	"InvalidSecurityToken.MismatchWithAccessKey": Systemic,
	"InvalidApi.NotFound":                        Systemic, // wrong endpoint or API version: every call fails
	"InvalidAction.NotFound":                     Systemic,
	"InvalidVersion":                             Systemic,
	"UnsupportedHTTPMethod":                      Systemic,
	CodeCredentials:                              Systemic, // no call can be signed until the source recovers
}

// MayHaveApplied reports whether an answer that names code may come from a
// call the provider applied all the same: its own internal failures
// (system error, unknown error, database exception) can come after the
// change was made. Transport failures and 5xx answers say so on their own
// (dypls.Error.Ambiguous); every other business code is a definite answer.
func MayHaveApplied(code string) bool {
	switch code {
	case "isp.SYSTEM_ERROR", "isp.UNKNOWN_ERR_CODE", "isp.DAO_EXCEPTION":
		return true
	}
	return false
}

// Classify returns the class of an API, gateway or transport code. Codes not
// in the table fall back by family: "Throttling*" throttled, "isp.*"
// transient, "isv.*" permanent, "Forbidden*", "InvalidAccessKeyId*" and
// "InvalidSecurityToken*" systemic, "Missing*" and "Invalid*" (a parameter the
// gateway rejected) permanent, "HTTP.429" throttled, and anything else
// transient.
func Classify(code string) Class {
	if c, ok := codeClasses[code]; ok {
		return c
	}
	switch {
	case strings.HasPrefix(code, "Throttling"), code == CodeHTTPPrefix+"429":
		return Throttled
	case strings.HasPrefix(code, "InvalidAccessKeyId"), strings.HasPrefix(code, "InvalidSecurityToken"),
		strings.HasPrefix(code, "Forbidden"):
		return Systemic
	case strings.HasPrefix(code, "isp."):
		return Transient
	case strings.HasPrefix(code, "isv."):
		return Permanent
	case strings.HasPrefix(code, "Missing"), strings.HasPrefix(code, "Invalid"):
		return Permanent
	}
	return Transient
}

// Codes returns every code of the table with its class, for documentation
// and tests.
func Codes() map[string]Class {
	out := make(map[string]Class, len(codeClasses))
	for k, v := range codeClasses {
		out[k] = v
	}
	return out
}
