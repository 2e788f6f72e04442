package dypls

import (
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	cases := []struct{ in, want string }{
		{"13812345678", "138****5678"},
		{"A=13812345678,B=13987654321", "A=138****5678,B=139****4321"},
		{"landline 01012345678 and 0755123456", "landline 010****5678 and 075****3456"},
		{"021123456789", "021****6789"},
		{"+8613812345678", "+86138****5678"},
		{"SubsId 1000000768790001 stays", "SubsId 1000000768790001 stays"},
		{"RequestId 986BCB6D-C9BF-42F9-91CE-3A9901233D36", "RequestId 986BCB6D-C9BF-42F9-91CE-3A9901233D36"},
		{"2030-09-05 12:00:00", "2030-09-05 12:00:00"},
		{"23812345678", "23812345678"}, // not a phone shape
		{"PhoneNoA%3D13800000000%26PhoneNoX%3D17000000000", "PhoneNoA%3D138****0000%26PhoneNoX%3D170****0000"},
		{"PhoneNoA%253D13800000000", "PhoneNoA%253D138****0000"},
		{`{"PhoneNoA":"13800000000"}`, `{"PhoneNoA":"138****0000"}`},
		{"RequestId 986BCB6D-C9BF-42F9-84C1-CF0164345425 stays", "RequestId 986BCB6D-C9BF-42F9-84C1-CF0164345425 stays"},
		{"id 986bcb6d-c9bf-42f9-84c1-0164345425ab and 13812345678", "id 986bcb6d-c9bf-42f9-84c1-0164345425ab and 138****5678"},
		{"", ""},
		{"123", "123"},
	}
	for _, c := range cases {
		if got := Mask(c.in); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMaskSeparated: numbers written in groups, as people type and
// spreadsheets format them, are masked wherever they appear; dates,
// decimals, versions, addresses and ids stay whole.
func TestMaskSeparated(t *testing.T) {
	cases := []struct{ in, want string }{
		{`got "+86 138-0013-8000"`, `got "+86 138-****-8000"`},
		{"unknown column \"+86 138-0013-8000\"", "unknown column \"+86 138-****-8000\""},
		{"138 0013 8000", "138 **** 8000"},
		{"138-0013-8000", "138-****-8000"},
		{"138.0013.8000", "138.****.8000"},
		{"(010) 8765-4321", "(010) ****-4321"},
		{"(0755)8765-4321", "(075*)****-4321"},
		{"010-87654321", "010-****4321"},
		{"+86-138-0013-8000", "+86-138-****-8000"},
		{"86 138 0013 8000", "86 138 **** 8000"},
		{"0086 138 0013 8000", "0086 138 **** 8000"},
		{"+86 10 8765 4321", "+86 10 8*** 4321"},
		{"+86 13800138000", "+86 138****8000"},
		{"call 138 0013 8000 or 139 0013 9000", "call 138 **** 8000 or 139 **** 9000"},
		{"A=138-0013-8000,B=139 0013 9000", "A=138-****-8000,B=139 **** 9000"},
		// Not numbers.
		{"2030-09-05 12:00:00", "2030-09-05 12:00:00"},
		{"2030-09-05 12:00:00.000", "2030-09-05 12:00:00.000"},
		{"took 1.2345678901s", "took 1.2345678901s"},
		{"rate 100.12345678", "rate 100.12345678"},
		{"redis 192.168.100.101:6379", "redis 192.168.100.101:6379"},
		{"SubsId 1000000768790001 - 2", "SubsId 1000000768790001 - 2"},
		{"sdk 1.63.107", "sdk 1.63.107"},
		{"line 12, 13 and 14", "line 12, 13 and 14"},
	}
	for _, c := range cases {
		if got := Mask(c.in); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := Mask(c.want); got != c.want {
			t.Errorf("Mask is not idempotent on %q: %q", c.want, got)
		}
	}
}

func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{"13812345678": "138****5678", "12345": "****", "": ""} {
		if got := MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzMask(f *testing.F) {
	for _, s := range []string{"13812345678", "x8613812345678y", "1000000768790001", "a%3D0101234567%26",
		"+86 138-0013-8000", "(010) 8765 4321", "138.0013.8000 139 0013 9000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Mask(s)
		if hasPhoneRun(uuidShape.ReplaceAllString(out, "-")) {
			t.Fatalf("Mask(%q) = %q still holds a phone number", s, out)
		}
		if d := digitsOfNumbers(uuidShape.ReplaceAllString(out, "-")); d != "" {
			t.Fatalf("Mask(%q) = %q still holds the number %s written in groups", s, out, d)
		}
		if Mask(out) != out {
			t.Fatalf("Mask is not idempotent on %q", s)
		}
	})
}

// digitsOfNumbers returns the digits of the first number written in groups
// in s that Mask hides, or "".
func digitsOfNumbers(s string) string {
	var gs []group
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || i > 0 && isDigit(s[i-1]) {
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		gs = append(gs, group{i, j})
	}
	for i := range gs {
		for m := 1; m <= 6 && i+m <= len(gs); m++ {
			w := gs[i : i+m]
			joined := true
			for k := 1; k < len(w); k++ {
				sep := s[w[k-1].end:w[k].start]
				joined = joined && len(sep) <= maxSep && strings.Trim(sep, " -.()") == ""
			}
			if _, ok := isNumber(s, w); joined && ok {
				return s[w[0].start:w[m-1].end]
			}
		}
	}
	return ""
}
