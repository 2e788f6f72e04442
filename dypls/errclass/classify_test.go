package errclass

import "testing"

// TestClassifyTable is the authority on classification: every code of the
// Dyplsapi error documentation and of the POP gateway, with the class
// dyplsq gives it.
func TestClassifyTable(t *testing.T) {
	want := map[string]Class{
		// Seed document.
		"isp.DAO_EXCEPTION":         Transient,
		"isp.RAM_PERMISSION_DENY":   Systemic,
		"isp.SYSTEM_ERROR":          Transient,
		"isp.UNKNOWN_ERR_CODE":      Transient,
		"isp.VENDOR_UNAVAILABLE":    Transient,
		"isv.ACCOUNT_ABNORMAL":      Systemic,
		"isv.ACCOUNT_NOT_EXISTS":    Systemic,
		"isv.BIND_CONFLICT":         Permanent,
		"isv.EXPIRE_DATE_ILLEGAL":   Permanent,
		"isv.FLOW_LIMIT":            Throttled,
		"isv.FORBIDDEN_ACTION":      Permanent,
		"isv.ILLEGAL_ARGUMENT":      Permanent,
		"isv.MOBILE_NUMBER_ILLEGAL": Permanent,
		"isv.NO_AVAILABLE_NUMBER":   Permanent,
		"isv.NO_NOT_EXIST":          Permanent,
		"isv.NO_USED_BY_OTHERS":     Permanent,
		"isv.OUT_OF_SERVICE":        Systemic,
		"isv.PARTNER_IS_CLOSED":     Systemic,
		"isv.PARTNER_NOT_EXIST":     Transient,
		"isv.PRODUCT_UNSUBSCRIBE":   Systemic,
		"isv.PRODUCT_UN_SUBSCRIPT":  Systemic,
		"isv.VENDOR_BIND_FAILED":    Transient,
		// Further business codes of the Dyplsapi documentation.
		"isp.GATEWAY_ERROR":      Transient,
		"isv.UPDATE_CONFLICT":    Transient,
		"isv.SUBS_NOT_EXIST":     Permanent,
		"isv.INVALID_PARAMETERS": Permanent,
		"isv.POOLKEY_NOT_EXISTS": Permanent,
		"isv.SUBS_NOT_BELONG":    Permanent,
		// Gateway codes.
		"Throttling.User":                            Throttled,
		"Throttling.Api":                             Throttled,
		"Throttling":                                 Throttled,
		"ServiceUnavailable":                         Transient,
		"InternalError":                              Transient,
		"SignatureNonceUsed":                         Transient,
		"InvalidTimeStamp.Expired":                   Systemic,
		"InvalidTimeStamp.Format":                    Systemic,
		"SignatureDoesNotMatch":                      Systemic,
		"IncompleteSignature":                        Systemic,
		"InvalidAccessKeyId.NotFound":                Systemic,
		"InvalidAccessKeyId.Inactive":                Systemic,
		"MissingSubsId":                              Permanent,
		"MissingParameter":                           Permanent,
		"InvalidParameter":                           Permanent,
		"InvalidPhoneNoA":                            Permanent,
		"InvalidApi.NotFound":                        Systemic,
		"InvalidAction.NotFound":                     Systemic,
		"Forbidden.RAM":                              Systemic,
		"Forbidden.RiskControl":                      Systemic,
		"UnsupportedHTTPMethod":                      Systemic,
		"Forbidden.AccessKeyDisabled":                Systemic,
		"InvalidAccessKeyId":                         Systemic,
		"InvalidVersion":                             Systemic,
		"InvalidSecurityToken.Expired":               Systemic,
		"InvalidSecurityToken.Malformed":             Systemic,
		"InvalidSecurityToken.MismatchWithAccessKey": Systemic,
		"InvalidSecurityToken.Other":                 Systemic,
		"Forbidden.Other":                            Systemic,
		// Transport and reply failures.
		CodeNotCalled:         Transient,
		CodeCredentials:       Systemic,
		CodeTimeout:           Transient,
		CodeConnectionRefused: Transient,
		CodeConnectFailed:     Transient,
		CodeConnectionDropped: Transient,
		CodeTransport:         Transient,
		CodeEmptyResponse:     Transient,
		CodeUnreadable:        Transient,
		"HTTP.502":            Transient,
		"HTTP.504":            Transient,
		"HTTP.429":            Throttled,
		// Unknown codes, by family (Classify: isp.* transient, isv.* dead,
		// anything else transient).
		"isp.SOMETHING_NEW":   Transient,
		"isv.SOMETHING_NEW":   Permanent,
		"Throttling.Whatever": Throttled,
		"SomethingElse":       Transient,
		"":                    Transient,
	}
	for code, c := range want {
		if got := Classify(code); got != c {
			t.Errorf("Classify(%q) = %v, want %v", code, got, c)
		}
	}
	// Every code in the table must be covered here, so the table cannot
	// drift from this test.
	for code, c := range Codes() {
		w, ok := want[code]
		if !ok {
			t.Errorf("code %q is in the table but not in this test", code)
			continue
		}
		if w != c {
			t.Errorf("table says %q is %v, test says %v", code, c, w)
		}
	}
}
