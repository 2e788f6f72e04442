package worker_test

import (
	"strings"
	"testing"

	"github.com/dyplsq/dyplsq/worker"
)

// TestHaltHint: each account-wide code points to the setting or place to
// check, and an account-level block is not blamed on permissions.
func TestHaltHint(t *testing.T) {
	for code, want := range map[string]string{
		"SignatureDoesNotMatch":        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
		"InvalidAccessKeyId.NotFound":  "ALIBABA_CLOUD_ACCESS_KEY_ID",
		"InvalidTimeStamp.Expired":     "clock",
		"InvalidSecurityToken.Expired": "ALIBABA_CLOUD_SECURITY_TOKEN",
		"Forbidden.RAM":                "RAM policy",
		"Forbidden.RiskControl":        "risk control",
		"InvalidApi.NotFound":          "DYPLS_ENDPOINT",
		"isv.ACCOUNT_ABNORMAL":         "console",
	} {
		if got := worker.HaltHint(code); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to name %q", code, got, want)
		}
	}
	if got := worker.HaltHint("Forbidden.RiskControl"); strings.Contains(got, "RAM") {
		t.Errorf("Forbidden.RiskControl blamed on RAM: %q", got)
	}
}
