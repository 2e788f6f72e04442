package dypls

import "strings"

// codeClasses is the one classification table. It covers every code of the
// Dyplsapi error documentation and of the POP gateway, and the product
// contract's outcome table, which settles every disagreement (account and
// credential codes are systemic). Classify handles what is not listed.
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
