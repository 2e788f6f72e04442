package tasks

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) // 08:00:00 in Beijing

// valid returns a valid update of the given OperateType.
func valid(op string) Update {
	u := Update{
		PoolKey:     "FC100000000000001",
		SubsId:      "1000000768790001",
		PhoneNoX:    "17000000000",
		OperateType: op,
	}
	switch op {
	case "updateNoA":
		u.PhoneNoA = "13800138000"
	case "updateNoB":
		u.PhoneNoB = "02112345678"
	case "updateExpire":
		u.Expiration = "2025-01-02 08:00:00"
	case "updateAxgGroup":
		u.GroupId = "1234"
	case "updateCallRestrict":
		u.CallRestrict = "CONTROL_BX_DISABLE"
	case "updateCallDisplayType":
		u.CallDisplayType = "1"
	case "updateOutId":
		u.OutId = "order-42"
	case "updateIsRecordingEnabled":
		u.IsRecordingEnabled = "false"
	case "updateAsr":
		u.ASRStatus, u.ASRModelId = "true", "980abddb908f48e8b987cb2cd3030001"
	}
	return u
}

func TestValidateAcceptsEveryOperateType(t *testing.T) {
	for _, op := range OperateTypes {
		t.Run(op, func(t *testing.T) {
			if err := valid(op).Validate(testNow); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(u *Update)
		field  string   // the one field at fault; "" for a valid update
		reason []string // substrings of its reason
	}{
		// Required fields.
		{"MissingSubsId", func(u *Update) { u.SubsId = "" }, "SubsId", []string{"required"}},
		{"MissingPhoneNoX", func(u *Update) { u.PhoneNoX = "" }, "PhoneNoX", []string{"required"}},
		{"MissingOperateType", func(u *Update) { u.OperateType = "" }, "OperateType", []string{"required", "updateNoA", "updateIsRecordingEnabled"}},
		{"SubsIdNotDigits", func(u *Update) { u.SubsId = "10000007687x0001" }, "SubsId", []string{"digits only", "'x' at position 12"}},

		// PoolKey or ProductType.
		{"NeitherPoolKeyNorProductType", func(u *Update) { u.PoolKey = "" }, "PoolKey", []string{"PoolKey", "ProductType"}},
		{"ProductTypeInsteadOfPoolKey", func(u *Update) { u.PoolKey, u.ProductType = "", "AXB_170" }, "", nil},
		{"BothPoolKeyAndProductType", func(u *Update) { u.ProductType = "AXN_95" }, "", nil},
		{"UnknownProductType", func(u *Update) { u.ProductType = "AXB_171" }, "ProductType",
			[]string{"AXB_170, AXN_170, AXN_95, AXN_EXTENSION_REUSE", `"AXB_171"`}},

		// OperateType.
		{"UnknownOperateType", func(u *Update) { u.OperateType = "updateNoC" }, "OperateType", []string{
			"updateNoA, updateNoB, updateExpire, updateAxgGroup, updateCallRestrict, updateCallDisplayType, updateOutId, updateIsRecordingEnabled",
			`"updateNoC"`}},
		{"OperateTypeWrongCase", func(u *Update) { u.OperateType = "updatenoa" }, "OperateType", []string{"did you mean updateNoA?"}},

		// The field each OperateType needs.
		{"UpdateNoAWithoutPhoneNoA", func(u *Update) { u.PhoneNoA = "" }, "PhoneNoA", []string{"required when OperateType is updateNoA"}},
		{"UpdateNoBWithoutPhoneNoB", func(u *Update) { *u = valid("updateNoB"); u.PhoneNoB = "" }, "PhoneNoB", []string{"updateNoB"}},
		{"UpdateExpireWithoutExpiration", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "" }, "Expiration", []string{"updateExpire", "yyyy-MM-dd HH:mm:ss"}},
		{"UpdateAxgGroupWithoutGroupId", func(u *Update) { *u = valid("updateAxgGroup"); u.GroupId = "" }, "GroupId", []string{"updateAxgGroup"}},
		{"UpdateCallRestrictWithoutCallRestrict", func(u *Update) { *u = valid("updateCallRestrict"); u.CallRestrict = "" }, "CallRestrict", []string{"CONTROL_AX_DISABLE"}},
		{"UpdateCallDisplayTypeWithoutCallDisplayType", func(u *Update) { *u = valid("updateCallDisplayType"); u.CallDisplayType = "" }, "CallDisplayType", []string{"updateCallDisplayType"}},
		{"UpdateOutIdWithoutOutId", func(u *Update) { *u = valid("updateOutId"); u.OutId = "" }, "OutId", []string{"updateOutId"}},
		{"UpdateIsRecordingEnabledWithoutValue", func(u *Update) { *u = valid("updateIsRecordingEnabled"); u.IsRecordingEnabled = "" }, "IsRecordingEnabled", []string{"true or false"}},

		// Phone numbers.
		{"MobileWithHyphens", func(u *Update) { u.PhoneNoA = "138-0013-8000" }, "PhoneNoA", []string{"digits only", "no hyphen", `"138******8000"`, "13 characters", "remove hyphens"}},
		{"MobileWithCountryCode", func(u *Update) { u.PhoneNoA = "+8613800138000" }, "PhoneNoA", []string{"digits only", "drop the country code"}},
		{"MobileWithSpace", func(u *Update) { u.PhoneNoA = "138 0013 8000" }, "PhoneNoA", []string{"digits only", "' ' at position 4"}},
		{"FullWidthDigits", func(u *Update) { u.PhoneNoA = "１３８００１３８０００" }, "PhoneNoA", []string{"full-width"}},
		{"MobileTooShort", func(u *Update) { u.PhoneNoA = "1380013800" }, "PhoneNoA", []string{"11 digits", "got 10 digits", `"138***3800"`}},
		{"MobileTooLong", func(u *Update) { u.PhoneNoA = "138001380001" }, "PhoneNoA", []string{"11 digits", "got 12 digits"}},
		{"Landline10Digits", func(u *Update) { u.PhoneNoA = "0101234567" }, "", nil},
		{"Landline12Digits", func(u *Update) { u.PhoneNoA = "075512345678" }, "", nil},
		{"LandlineWithoutAreaCode", func(u *Update) { u.PhoneNoA = "12345678" }, "PhoneNoA", []string{"11 digits"}},
		{"LandlineTooShort", func(u *Update) { u.PhoneNoA = "021123456" }, "PhoneNoA", []string{"10 to 12 digits", "got 9 digits"}},
		{"LandlineTooLong", func(u *Update) { u.PhoneNoA = "0211234567890" }, "PhoneNoA", []string{"10 to 12 digits", "got 13 digits"}},
		{"LandlineWithHyphen", func(u *Update) { u.PhoneNoA = "021-12345678" }, "PhoneNoA", []string{"no hyphen"}},
		{"WrongFirstDigit", func(u *Update) { u.PhoneNoA = "23800138000" }, "PhoneNoA", []string{"start with 1", "or 0"}},
		{"BadPhoneNoB", func(u *Update) { *u = valid("updateNoB"); u.PhoneNoB = "1380013800x" }, "PhoneNoB", []string{"digits only"}},
		{"BadPhoneNoX", func(u *Update) { u.PhoneNoX = "170-0000-0000" }, "PhoneNoX", []string{"digits only"}},

		// Expiration.
		{"ExpirationSlashes", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025/01/02 08:00:00" }, "Expiration",
			[]string{`"yyyy-MM-dd HH:mm:ss" in Beijing time`, `"2025/01/02 08:00:00"`}},
		{"ExpirationISO", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025-01-02T08:00:00" }, "Expiration", []string{"use a space"}},
		{"ExpirationNoLeadingZeros", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025-1-2 8:00:00" }, "Expiration", []string{"yyyy-MM-dd"}},
		{"ExpirationShortHour", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025-01-02 8:00:00" }, "Expiration", []string{"yyyy-MM-dd"}},
		{"ExpirationNoDay", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025-02-30 08:00:00" }, "Expiration", []string{"day out of range"}},
		{"ExpirationPast", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2024-12-31 08:00:00" }, "Expiration",
			[]string{"more than 60 s in the future", "now is 2025-01-01 08:00:00 Beijing time", "in the past"}},
		// testNow is 08:00:00 Beijing time: a UTC reading would put these 8 h ahead.
		{"ExpirationOnly30sAhead", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025-01-01 08:00:30" }, "Expiration", []string{"only 30s ahead"}},
		{"ExpirationExactly60sAhead", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025-01-01 08:01:00" }, "Expiration", []string{"only 1m0s ahead"}},
		{"Expiration61sAhead", func(u *Update) { *u = valid("updateExpire"); u.Expiration = "2025-01-01 08:01:01" }, "", nil},

		// Enumerations.
		{"CallRestrictAX", func(u *Update) { *u = valid("updateCallRestrict"); u.CallRestrict = "CONTROL_AX_DISABLE" }, "", nil},
		{"CallRestrictClear", func(u *Update) { *u = valid("updateCallRestrict"); u.CallRestrict = "CONTROL_CLEAR_DISABLE" }, "", nil},
		{"CallRestrictUnknown", func(u *Update) { *u = valid("updateCallRestrict"); u.CallRestrict = "CONTROL_XY_DISABLE" }, "CallRestrict",
			[]string{"CONTROL_AX_DISABLE, CONTROL_BX_DISABLE, CONTROL_CLEAR_DISABLE"}},
		{"CallDisplayType2", func(u *Update) { *u = valid("updateCallDisplayType"); u.CallDisplayType = "2" }, "CallDisplayType", []string{"must be 1", `"2"`}},
		{"IsRecordingEnabledTrue", func(u *Update) { *u = valid("updateIsRecordingEnabled"); u.IsRecordingEnabled = "true" }, "", nil},
		{"IsRecordingEnabledYes", func(u *Update) { *u = valid("updateIsRecordingEnabled"); u.IsRecordingEnabled = "yes" }, "IsRecordingEnabled", []string{"true or false", `"yes"`}},
		{"ASRStatusOne", func(u *Update) { *u = valid("updateAsr"); u.ASRStatus = "1" }, "ASRStatus", []string{"true or false"}},
		{"ASRStatusFalse", func(u *Update) {
			*u = valid("updateAsr")
			u.ASRStatus = "false"
			u.ASRModelId = ""
			u.RingConfig = `{"AXBRing_A":"100000001"}`
		}, "", nil},

		// A number in the wrong column is masked wherever it is echoed.
		{"NumberInOperateType", func(u *Update) { u.OperateType = "13800138000" }, "OperateType", []string{`"138****8000"`}},
		{"NumberInCallRestrict", func(u *Update) { *u = valid("updateCallRestrict"); u.CallRestrict = "x13800138000" }, "CallRestrict", []string{`"x138****8000"`}},
		{"GroupedNumberInOperateType", func(u *Update) { u.OperateType = "+86 138-0013-8000" }, "OperateType", []string{`"+86 138-****-8000"`}},
		{"GroupedNumberInCallRestrict", func(u *Update) { *u = valid("updateCallRestrict"); u.CallRestrict = "(010) 8765 4321" }, "CallRestrict", []string{`"(010) **** 4321"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := valid("updateNoA")
			tc.change(&u)
			err := u.Validate(testNow)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate: %v, want a *ValidationError", err)
			}
			if len(ve.Problems) != 1 || ve.Problems[0].Field != tc.field {
				t.Fatalf("problems %q, want one for %s", ve.Problems, tc.field)
			}
			for _, want := range tc.reason {
				if !strings.Contains(ve.Problems[0].Reason, want) {
					t.Errorf("reason %q does not contain %q", ve.Problems[0].Reason, want)
				}
			}
			checkNoNumbers(t, u, err.Error())
		})
	}
}

// checkNoNumbers fails if msg holds a whole phone number of u.
func checkNoNumbers(t *testing.T, u Update, msg string) {
	t.Helper()
	for _, v := range []string{u.PhoneNoA, u.PhoneNoB, u.PhoneNoX, "13800138000"} {
		if len(v) >= 8 && strings.Contains(msg, v) {
			t.Errorf("message holds the number %q: %s", v, msg)
		}
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	u := Update{
		PhoneNoX:        "170 0000 0000",
		OperateType:     "updateNoB", // an OperateType that is not known: every field is checked
		PhoneNoA:        "13800138000x",
		Expiration:      "tomorrow",
		CallDisplayType: "2",
		ASRStatus:       "on",
	}
	u.OperateType = "updateNoC"
	err := u.Validate(testNow)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate: %v, want a *ValidationError", err)
	}
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	want := []string{"PoolKey", "SubsId", "PhoneNoX", "OperateType", "PhoneNoA", "Expiration", "CallDisplayType", "ASRStatus"}
	if !slices.Equal(fields, want) {
		t.Fatalf("fields %q, want %q", fields, want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "PoolKey: required when ProductType is empty") || strings.Count(msg, "; ") < len(want)-1 {
		t.Errorf("Error() = %q, want \"Field: reason; ...\"", msg)
	}
	for _, p := range ve.Problems {
		if !strings.Contains(msg, p.Field+": "+p.Reason) {
			t.Errorf("Error() lacks %q", p.String())
		}
	}
	checkNoNumbers(t, u, msg)
	if strings.Contains(msg, "13800138000") || strings.Contains(msg, "17000000000") {
		t.Errorf("message holds a phone number: %s", msg)
	}
}

func TestField(t *testing.T) {
	want := map[string]string{
		"updateNoA": "PhoneNoA", "updateNoB": "PhoneNoB", "updateExpire": "Expiration",
		"updateAxgGroup": "GroupId", "updateCallRestrict": "CallRestrict",
		"updateCallDisplayType": "CallDisplayType", "updateOutId": "OutId",
		"updateIsRecordingEnabled": "IsRecordingEnabled", "updateAsr": "ASRStatus", "updateNoC": "", "": "",
	}
	for op, f := range want {
		if got := (Update{OperateType: op}).Field(); got != f {
			t.Errorf("Field() for %q = %q, want %q", op, got, f)
		}
		if got := OperateTypeField(op); got != f {
			t.Errorf("OperateTypeField(%q) = %q, want %q", op, got, f)
		}
	}
	if len(OperateTypes) != 9 {
		t.Errorf("OperateTypes has %d entries, want 9", len(OperateTypes))
	}
}
