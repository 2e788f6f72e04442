package dyplsim

import (
	"strings"
	"testing"
)

// TestRingConfigDuplicateKey: a RingConfig that gives a key twice is
// refused, as the validator of package tasks refuses it.
func TestRingConfigDuplicateKey(t *testing.T) {
	if msg := checkRingConfig(`{"AXBRing_A":"1","AXBRing_A":"2"}`); !strings.Contains(msg, "given twice") {
		t.Errorf("duplicate key: %q", msg)
	}
	if msg := checkRingConfig(`{"AXBRing_A":"1","AXBRing_B":"2"}`); msg != "" {
		t.Errorf("valid: %q", msg)
	}
}
