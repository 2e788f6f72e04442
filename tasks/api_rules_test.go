package tasks

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// problemsOf validates u at testNow and returns its problems by field.
func problemsOf(t *testing.T, u Update) map[string]string {
	t.Helper()
	err := u.Validate(testNow)
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate: %v, want a *ValidationError", err)
	}
	m := map[string]string{}
	for _, p := range ve.Problems {
		m[p.Field] += p.Reason
	}
	checkNoNumbers(t, u, err.Error())
	return m
}

// TestValidateRefusesDamagedText: bytes that are not UTF-8 (a GBK file read
// as UTF-8) would reach the API as U+FFFD; they, and a U+FFFD already
// there, are refused in every field.
func TestValidateRefusesDamagedText(t *testing.T) {
	gbk := "\xb6\xa9\xb5\xa5" // 订单 in GBK
	for _, f := range allColumns {
		u := valid("updateOutId")
		p := FieldValue(&u, f)
		*p += gbk
		ps := problemsOf(t, u)
		if !strings.Contains(ps[f], "not valid UTF-8") || !strings.Contains(ps[f], "GBK") {
			t.Errorf("%s with GBK bytes: problems %q", f, ps)
		}
		u = valid("updateOutId")
		*FieldValue(&u, f) += "\ufffd"
		if ps := problemsOf(t, u); !strings.Contains(ps[f], "U+FFFD") {
			t.Errorf("%s with U+FFFD: problems %q", f, ps)
		}
	}
	if _, err := NewTask(Update{PoolKey: "FC1", SubsId: "1000000768790001", PhoneNoX: "17000000000",
		OperateType: "updateOutId", OutId: "order " + gbk}); err == nil {
		t.Error("NewTask accepted an OutId that is not UTF-8")
	}
	u := valid("updateOutId")
	u.OutId = "订单-42 ①"
	if ps := problemsOf(t, u); ps != nil {
		t.Errorf("Chinese text in UTF-8: %q", ps)
	}
}

// TestValidateGroupId: GroupId is an integer to the API.
func TestValidateGroupId(t *testing.T) {
	for v, want := range map[string]string{
		"1234": "", "9223372036854775807": "",
		"abc": "positive integer", "-5": "positive integer", "0": "positive integer", "12.0": "ends in .0",
		"1.2E+3": "scientific notation", "99999999999999999999": "at most 9223372036854775807",
		"9223372036854775808": "at most 9223372036854775807",
	} {
		u := valid("updateAxgGroup")
		u.GroupId = v
		got := problemsOf(t, u)["GroupId"]
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("GroupId %q: %q, want %q", v, got, want)
		}
	}
}

// TestValidateExpirationVariants: the format is exact, with a hint for the
// variants people write; an Expiration less than ten minutes ahead is valid
// with a warning.
func TestValidateExpirationVariants(t *testing.T) {
	for v, want := range map[string]string{
		"2025-01-02 08:00:00.000": "drop the fractional seconds (.000)",
		"2025-01-02  08:00:00":    "one space between date and time",
		"2025-01-02 08:00:00 ":    "yyyy-MM-dd", // Normalize trims it; Validate alone does not
		"45658.3333":              "a spreadsheet wrote the date as a number",
	} {
		u := valid("updateExpire")
		u.Expiration = v
		if got := problemsOf(t, u)["Expiration"]; !strings.Contains(got, want) {
			t.Errorf("Expiration %q: %q, want %q", v, got, want)
		}
	}
	u := valid("updateExpire")
	u.Expiration = "2025-01-01 08:05:00" // 5 minutes after testNow
	if ps := problemsOf(t, u); ps != nil {
		t.Fatalf("5 minutes ahead: %q", ps)
	}
	ws := u.Warnings(testNow)
	if len(ws) != 1 || ws[0].Field != "Expiration" || !strings.Contains(ws[0].Reason, "only 5m0s ahead") ||
		!strings.Contains(ws[0].Reason, "isv.EXPIRE_DATE_ILLEGAL") {
		t.Errorf("warnings %q", ws)
	}
	u.Expiration = "2025-01-01 08:10:00"
	if ws := u.Warnings(testNow); len(ws) != 0 {
		t.Errorf("10 minutes ahead: warnings %q", ws)
	}
}

// TestValidateRingConfig: a JSON object of the documented keys, each with a
// string code.
func TestValidateRingConfig(t *testing.T) {
	for v, want := range map[string]string{
		`{"AXBRing_A":"100000001","AXBRing_B":"100000002"}`:                                                   "",
		`{"AXNRing_AB":"1","AXNRing_A":"2","AXNRing_N":"3","AXGRing_AB":"4","AXGRing_A":"5","AXGRing_G":"6"}`: "",
		`ring-42`:                           "must be a JSON object",
		`["AXBRing_A"]`:                     "must be a JSON object",
		`null`:                              "must be a JSON object",
		`{}`:                                "the object is empty",
		`{"AXBRing_C":"1"}`:                 `unknown key "AXBRing_C"`,
		`{"AXBRing_A":100000001}`:           "AXBRing_A must be a non-empty string",
		`{"AXBRing_A":""}`:                  "AXBRing_A must be a non-empty string",
		`{"AXBRing_A":"1","AXBRing_A":"2"}`: `key "AXBRing_A" given twice`,
	} {
		u := valid("updateNoA")
		u.RingConfig = v
		got := problemsOf(t, u)["RingConfig"]
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("RingConfig %s: %q, want %q", v, got, want)
		}
	}
}

// TestValidateUpdateAsr: updateAsr sets ASRStatus; ASRModelId is required
// when it turns speech recognition on.
func TestValidateUpdateAsr(t *testing.T) {
	u := valid("updateAsr")
	if ps := problemsOf(t, u); ps != nil {
		t.Fatalf("updateAsr: %q", ps)
	}
	u.ASRModelId = ""
	if got := problemsOf(t, u)["ASRModelId"]; !strings.Contains(got, "required when OperateType is updateAsr and ASRStatus is true") {
		t.Errorf("updateAsr on without a model: %q", got)
	}
	u.ASRStatus = "false"
	if ps := problemsOf(t, u); ps != nil {
		t.Errorf("updateAsr off: %q", ps)
	}
	u.ASRStatus = ""
	if got := problemsOf(t, u)["ASRStatus"]; !strings.Contains(got, "required when OperateType is updateAsr") {
		t.Errorf("updateAsr without ASRStatus: %q", got)
	}
}

// TestValidatePhoneNoX95: a 95 X number is valid with ProductType AXN_95.
func TestValidatePhoneNoX95(t *testing.T) {
	u := valid("updateNoA")
	u.ProductType, u.PhoneNoX = "AXN_95", "95013800001"
	if ps := problemsOf(t, u); ps != nil {
		t.Errorf("95 number with AXN_95: %q", ps)
	}
	u.PhoneNoX = "95"
	if got := problemsOf(t, u)["PhoneNoX"]; !strings.Contains(got, "95 and 3 to 10 more digits") {
		t.Errorf("short 95 number: %q", got)
	}
	u.ProductType, u.PhoneNoX = "", "95013800001"
	if got := problemsOf(t, u)["PhoneNoX"]; !strings.Contains(got, "accepted with ProductType AXN_95") {
		t.Errorf("95 number without AXN_95: %q", got)
	}
}

// TestValidateSpreadsheetHints: values a spreadsheet changed get a hint
// that says what happened.
func TestValidateSpreadsheetHints(t *testing.T) {
	for _, c := range []struct{ field, v, want string }{
		{"PhoneNoA", "1.38001E+10", "scientific notation"},
		{"PhoneNoA", "'13800138000", "drop the leading '"},
		{"PhoneNoA", `="0101234567"`, `the ="..." form is an Excel formula`},
		{"PhoneNoA", "13612345612.0", "ends in .0"},
		{"PhoneNoA", "1012345678", "dropped its leading 0"},
		{"PhoneNoA", "2112345678", "dropped its leading 0"},
		{"SubsId", "1.00000076879E+15", "scientific notation"},
		{"SubsId", "1000000768790001.0", "ends in .0"},
		{"SubsId", "'1000000768790001", "drop the leading '"},
		{"CallDisplayType", "1.0", "ends in .0"},
	} {
		u := valid("updateNoA")
		if c.field == "CallDisplayType" {
			u = valid("updateCallDisplayType")
		}
		*FieldValue(&u, c.field) = c.v
		if got := problemsOf(t, u)[c.field]; !strings.Contains(got, c.want) {
			t.Errorf("%s %q: %q, want %q", c.field, c.v, got, c.want)
		}
	}
}

// TestUnusedFields: values the OperateType does not use are warned about,
// not checked, and left out of the task's payload.
func TestUnusedFields(t *testing.T) {
	u := valid("updateNoA")
	u.Expiration = "2020-01-01 00:00:00" // stale, and in the past: not checked
	u.ASRStatus = "yes"
	u.RingConfig = `{"AXBRing_A":"100000001"}` // used by every OperateType
	if ps := problemsOf(t, u); ps != nil {
		t.Fatalf("problems %q", ps)
	}
	if got := u.Unused(); !slices.Equal(got, []string{"Expiration", "ASRStatus"}) {
		t.Fatalf("Unused = %q", got)
	}
	ws := u.Warnings(testNow)
	if len(ws) != 2 || ws[0].Field != "Expiration" || !strings.Contains(ws[0].Reason, "not used by OperateType updateNoA") {
		t.Fatalf("warnings %q", ws)
	}
	u.Expiration = "2099-01-01 00:00:00"
	task, err := newTask(u, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got.Expiration != "" || got.ASRStatus != "" || got.PhoneNoA != u.PhoneNoA || got.RingConfig != u.RingConfig {
		t.Errorf("payload keeps unused fields, or lost used ones: %s", task.Payload())
	}
	if (Update{OperateType: "updateNoC", OutId: "x"}).Unused() != nil {
		t.Error("Unused with an unknown OperateType")
	}
	asr := valid("updateAsr")
	if got := asr.Unused(); got != nil {
		t.Errorf("updateAsr: Unused = %q", got)
	}
	_ = time.Second
}

// TestGroupIdTooLargeSaysTheLimit: a GroupId past the largest integer names
// the largest one, not a count of digits it may have.
func TestGroupIdTooLargeSaysTheLimit(t *testing.T) {
	u := valid("updateAxgGroup")
	u.GroupId = "9223372036854775808"
	if got := problemsOf(t, u)["GroupId"]; strings.Contains(got, "19 digits") {
		t.Errorf("GroupId %s: %q", u.GroupId, got)
	}
}
