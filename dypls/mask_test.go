package dypls

import "testing"

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

func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{"13812345678": "138****5678", "12345": "****", "": ""} {
		if got := MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzMask(f *testing.F) {
	for _, s := range []string{"13812345678", "x8613812345678y", "1000000768790001", "a%3D0101234567%26"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Mask(s)
		if hasPhoneRun(uuidShape.ReplaceAllString(out, "-")) {
			t.Fatalf("Mask(%q) = %q still holds a phone number", s, out)
		}
		if Mask(out) != out {
			t.Fatalf("Mask is not idempotent on %q", s)
		}
	})
}
