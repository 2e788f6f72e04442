package mask

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
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
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
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := Text(c.want); got != c.want {
			t.Errorf("Text is not idempotent on %q: %q", c.want, got)
		}
	}
}

// TestMaskWideAndUnicode: numbers typed with full-width digits, ideographic
// or no-break spaces, en or em dashes, slashes, spaced dashes or one dot
// after the prefix are masked; ids, dates, decimals and addresses stay.
func TestMaskWideAndUnicode(t *testing.T) {
	cases := []struct{ in, want string }{
		{"１３８００１３８０００", "１３８****８０００"},
		{"got \"１３８ ００１３ ８０００\"", "got \"１３８ **** ８０００\""},
		{"138\u30000013\u30008000", "138\u3000****\u30008000"},
		{"138\u00a00013\u00a08000", "138\u00a0****\u00a08000"},
		{"138\u20130013\u20138000", "138\u2013****\u20138000"},
		{"138\u20140013\u20148000", "138\u2014****\u20148000"},
		{"138/0013/8000", "138/****/8000"},
		{"138 - 0013 - 8000", "138 - **** - 8000"},
		{"138.00138000", "138.****8000"},
		{"+86\u3000138\u30000013\u30008000", "+86\u3000138\u3000****\u30008000"},
		{"１３８-0013-８０００", "１３８-****-８０００"},
		// Not numbers.
		{"SubsId 1000000768790001", "SubsId 1000000768790001"},
		{"SubsId １０００００００７６８７９０００１", "SubsId １０００００００７６８７９０００１"},
		{"RequestId 986BCB6D-C9BF-42F9-91CE-3A9901233D36", "RequestId 986BCB6D-C9BF-42F9-91CE-3A9901233D36"},
		{"2026-12-01 10:00:00", "2026-12-01 10:00:00"},
		{"2026/12/01 10:00", "2026/12/01 10:00"},
		{"２０２６－１２－０１ １０:００:００", "２０２６－１２－０１ １０:００:００"},
		{"rate 100.12345678", "rate 100.12345678"},
		{"amount 1234.5678901", "amount 1234.5678901"},
		{"redis 192.168.100.101:6379", "redis 192.168.100.101:6379"},
		{"task bq4hz7kpmw2rtx9ca-000012", "task bq4hz7kpmw2rtx9ca-000012"},
		{"SubsId 1000000768790001 - 2", "SubsId 1000000768790001 - 2"},
	}
	for _, c := range cases {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := Text(c.want); got != c.want {
			t.Errorf("Text is not idempotent on %q: %q", c.want, got)
		}
	}
	if got := Number("１３８００１３８０００"); got != "１３８****８０００" {
		t.Errorf("Number of full-width digits = %q", got)
	}
}

func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{"13812345678": "138****5678", "12345": "****", "": ""} {
		if got := Number(in); got != want {
			t.Errorf("Number(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzMask(f *testing.F) {
	for _, s := range []string{"13812345678", "x8613812345678y", "1000000768790001", "a%3D0101234567%26",
		"+86 138-0013-8000", "(010) 8765 4321", "138.0013.8000 139 0013 9000"} {
		f.Add(s)
	}
	f.Add("１３８\u3000００１３\u00a0８０００ 138 – 0013 — 8000 138/0013/8000 138.00138000")
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		plain := asciiDigits(uuidShape.ReplaceAllString(out, "-"))
		if hasPhoneRun(plain) {
			t.Fatalf("Text(%q) = %q still holds a phone number", s, out)
		}
		if d := digitsOfNumbers(plain); d != "" {
			t.Fatalf("Text(%q) = %q still holds the number %s written in groups", s, out, d)
		}
		if Text(out) != out {
			t.Fatalf("Text is not idempotent on %q", s)
		}
	})
}

// asciiDigits writes full-width digits as ASCII digits and the other
// separators Text knows as the ASCII one they stand for, one byte each.
func asciiDigits(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '０' && r <= '９':
			return r - '０' + '0'
		case r == '\u3000', r == '\u00a0':
			return ' '
		case r == '\u2013', r == '\u2014':
			return '-'
		}
		return r
	}, s)
}

// digitsOfNumbers returns the digits of the first number written in groups
// in s that Text hides, or "".
func digitsOfNumbers(s string) string {
	cs := scanChars(s)
	var gs []group
	for i := range cs {
		if cs[i].digit == 0 || i > 0 && cs[i-1].digit != 0 {
			continue
		}
		j := i
		for j < len(cs) && cs[j].digit != 0 {
			j++
		}
		gs = append(gs, group{i, j})
	}
	for i := range gs {
		for m := 1; m <= 6 && i+m <= len(gs); m++ {
			w := gs[i : i+m]
			joined := true
			for k := 1; k < len(w); k++ {
				n := w[k].start - w[k-1].end
				for _, c := range cs[w[k-1].end:w[k].start] {
					joined = joined && c.sep != 0
				}
				joined = joined && n <= maxSep
			}
			if _, ok := isNumber(cs, w); joined && ok {
				return s[cs[w[0].start].start:cs[w[m-1].end-1].end]
			}
		}
	}
	return ""
}

// hasPhoneRun reports whether s holds an unbroken run of digits that Text
// would hide.
func hasPhoneRun(s string) bool {
	run := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isDigit(s[i]) {
			run++
			continue
		}
		if run >= 10 && run <= 14 && isPhoneRun(s[i-run:i]) {
			return true
		}
		run = 0
	}
	return false
}

func TestStars(t *testing.T) {
	for in, want := range map[string]string{
		"13812345678":    "138****5678",
		"075512345678":   "075*****5678",
		"1234567":        "*******",
		"+8613812345678": "+86*******5678",
		"":               "",
	} {
		if got := Stars(in); got != want {
			t.Errorf("Stars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextIDsAndRuns(t *testing.T) {
	for in, want := range map[string]string{
		"call 13812345678 now":  "call 138****5678 now",
		"1000000768790001":      "1000000768790001", // a SubsId stays whole
		"23812345678":           "23812345678",
		"a02112345678b":         "a021****5678b",
		"138123456781381234567": "138123456781381234567",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTextUUIDsStandAlone: a UUID stays whole, but digits glued to one are
// not taken into it: a number before a UUID-shaped tail is masked.
func TestTextUUIDsStandAlone(t *testing.T) {
	for in, want := range map[string]string{
		"RequestId 8B24B221-8C92-0BE1-DD24-6D76BAC2B5D6 ok":   "RequestId 8B24B221-8C92-0BE1-DD24-6D76BAC2B5D6 ok",
		"task 13800138-0000-4000-8000-000000000000":           "task 13800138-0000-4000-8000-000000000000",
		"/v1/updates/13800138000-aaaa-bbbb-cccc-ddddeeeeffff": "/v1/updates/138****8000-aaaa-bbbb-cccc-ddddeeeeffff",
		"x13800138000-aaaa-bbbb-cccc-ddddeeeeffff":            "x138****8000-aaaa-bbbb-cccc-ddddeeeeffff",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}
