package monitor

import (
	"strings"
	"testing"
)

func TestFormatPayload(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"json pretty and masked", `{"PhoneNoA":"13812345678","SubsId":"1000000000000001"}`,
			"{\n  \"PhoneNoA\": \"138****5678\",\n  \"SubsId\": \"1000000000000001\"\n}"},
		{"json number masked", `{"PhoneNoB":13712345678}`, "{\n  \"PhoneNoB\": 137****5678\n}"},
		{"escaped digits masked", `{"PhoneNoA":"\u00313812345678"}`, "{\n  \"PhoneNoA\": \"138****5678\"\n}"},
		{"text masked", "call 13812345678 now", "call 138****5678 now"},
		{"binary", "\x00\x01\xff", "<3 bytes>"},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (PayloadFormatter{}).FormatPayload("dypls:update_subscription", []byte(tc.in)); got != tc.want {
				t.Errorf("FormatPayload(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := (ResultFormatter{}).FormatResult("", []byte(tc.in)); got != tc.want {
				t.Errorf("FormatResult(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatPayloadNeverShowsNumber(t *testing.T) {
	got := PayloadFormatter{}.FormatPayload("x", []byte(`{"a":["013912345678", {"b":"8613812345678"}]}`))
	for _, n := range []string{"013912345678", "13812345678"} {
		if strings.Contains(got, n) {
			t.Errorf("formatted payload shows %s: %s", n, got)
		}
	}
}
