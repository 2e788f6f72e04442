package tasks

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFields(t *testing.T) {
	want := []string{"PoolKey", "ProductType", "SubsId", "PhoneNoX", "OperateType", "PhoneNoA", "PhoneNoB",
		"Expiration", "GroupId", "CallRestrict", "CallDisplayType", "OutId", "IsRecordingEnabled",
		"RingConfig", "ASRStatus", "ASRModelId"}
	if !slices.Equal(Fields, want) {
		t.Errorf("Fields = %q, want %q", Fields, want)
	}
	if !slices.Equal(KnownColumns, append(want, "IdempotencyKey")) {
		t.Errorf("KnownColumns = %q", KnownColumns)
	}
	// Every known column is a JSON key of its own field.
	var u Update
	for i, f := range KnownColumns {
		p := FieldValue(&u, f)
		if p == nil {
			t.Fatalf("FieldValue(%q) = nil", f)
		}
		*p = strings.Repeat("x", i+1)
	}
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for i, f := range KnownColumns {
		if m[f] != strings.Repeat("x", i+1) {
			t.Errorf("JSON key %q = %q, want the value set through FieldValue", f, m[f])
		}
	}
	if len(m) != len(KnownColumns) {
		t.Errorf("JSON has %d keys, want %d: %s", len(m), len(KnownColumns), b)
	}
}

func TestCanonicalField(t *testing.T) {
	for in, want := range map[string]string{
		"SubsId": "SubsId", "subsid": "SubsId", "SUBSID": "SubsId", " PhoneNoA\t": "PhoneNoA",
		"asrstatus": "ASRStatus", "idempotencykey": "IdempotencyKey", "\ufeffPoolKey": "PoolKey",
	} {
		got, ok := CanonicalField(in)
		if !ok || got != want {
			t.Errorf("CanonicalField(%q) = %q, %v; want %q, true", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "Subs_Id", "_meta", "_code", "Version"} {
		if got, ok := CanonicalField(in); ok {
			t.Errorf("CanonicalField(%q) = %q, true; want false", in, got)
		}
	}
	var u Update
	if FieldValue(&u, "nope") != nil {
		t.Error("FieldValue of an unknown name is not nil")
	}
	*FieldValue(&u, "phonenoa") = "13800138000"
	if u.PhoneNoA != "13800138000" {
		t.Errorf("FieldValue did not set PhoneNoA: %+v", u)
	}
}

func TestNormalize(t *testing.T) {
	u := Update{
		PoolKey:            "\u3000FC100000000000001\u3000",        // full-width spaces
		SubsId:             " \t1000000768790001\r\n",              // ASCII white space
		PhoneNoX:           "\u00a017000000000\u2003",              // no-break space, em space
		OperateType:        "\ufeffupdateIsRecordingEnabled\u200b", // BOM, zero-width space
		OutId:              "  a b\u3000c  ",                       // inner spaces stay
		IsRecordingEnabled: " TRUE ",
		ASRStatus:          "False",
		RingConfig:         "\u3000",
		IdempotencyKey:     "\u3000key 1\u3000",
	}
	u.Normalize()
	want := Update{
		PoolKey:            "FC100000000000001",
		SubsId:             "1000000768790001",
		PhoneNoX:           "17000000000",
		OperateType:        "updateIsRecordingEnabled",
		OutId:              "a b\u3000c",
		IsRecordingEnabled: "true",
		ASRStatus:          "false",
		IdempotencyKey:     "key 1",
	}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("Normalize:\n got %+v\nwant %+v", u, want)
	}
	if err := u.Validate(testNow); err != nil {
		t.Fatalf("normalized update is invalid: %v", err)
	}
	yes := Update{IsRecordingEnabled: "yes"}
	yes.Normalize()
	if yes.IsRecordingEnabled != "yes" {
		t.Errorf("Normalize changed a non-boolean to %q", yes.IsRecordingEnabled)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	u := Update{
		PoolKey: "FC1", ProductType: "AXB_170", SubsId: "1000000768790001", PhoneNoX: "17000000000",
		OperateType: "updateNoA", PhoneNoA: "13800138000", PhoneNoB: "02112345678",
		Expiration: "2030-09-05 12:00:00", GroupId: "1234", CallRestrict: "CONTROL_AX_DISABLE",
		CallDisplayType: "1", OutId: `a "b" 中文`, IsRecordingEnabled: "true",
		RingConfig: `{"AXBRing_A":"100000001"}`, ASRStatus: "false", ASRModelId: "m-1",
		IdempotencyKey: "k",
		Meta: &Meta{Schema: 1, Version: 42, EnqueuedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
			Batch: "b1", Line: 7, Source: SourceCLI, RequeuedFrom: "t0"},
	}
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var got Update
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal %s: %v", b, err)
	}
	if !reflect.DeepEqual(got, u) {
		t.Fatalf("round trip:\n got %+v %+v\nwant %+v %+v", got, got.Meta, u, u.Meta)
	}
	for _, key := range []string{`"_meta":{"schema":1,"version":42,"enqueued_at":"2025-01-02T03:04:05.000000006Z","batch":"b1","line":7,"source":"cli","requeued_from":"t0"}`, `"SubsId":"1000000768790001"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("payload %s lacks %s", b, key)
		}
	}

	// Empty values and a nil Meta are left out.
	b, _ = json.Marshal(Update{SubsId: "1"})
	if string(b) != `{"SubsId":"1"}` {
		t.Errorf("Marshal of a sparse update = %s", b)
	}
}

func TestUnmarshalJSONAcceptsNumbersAndBooleans(t *testing.T) {
	in := `{
		"PoolKey": "FC1",
		"subsid": 1000000768790001234,
		"PhoneNoX": 17000000000,
		"OperateType": "updateCallDisplayType",
		"CallDisplayType": 1,
		"IsRecordingEnabled": true,
		"ASRStatus": false,
		"GroupId": 1234,
		"RingConfig": {"AXBRing_A": "100000001", "AXBRing_B": "100000002"},
		"OutId": null,
		"_comment": ["ignored", 1],
		"_meta": {"schema": 1, "version": 9, "enqueued_at": "2025-01-01T00:00:00Z", "future_key": true}
	}`
	var u Update
	if err := json.Unmarshal([]byte(in), &u); err != nil {
		t.Fatal(err)
	}
	want := Update{
		PoolKey: "FC1", SubsId: "1000000768790001234", PhoneNoX: "17000000000",
		OperateType: "updateCallDisplayType", CallDisplayType: "1", IsRecordingEnabled: "true",
		ASRStatus: "false", GroupId: "1234", RingConfig: `{"AXBRing_A":"100000001","AXBRing_B":"100000002"}`,
		Meta: &Meta{Schema: 1, Version: 9, EnqueuedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("got  %+v %+v\nwant %+v %+v", u, u.Meta, want, want.Meta)
	}
}

func TestUnmarshalJSONErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"NotAnObject", `["SubsId"]`, "not a JSON object"},
		{"String", `"x"`, "not a JSON object"},
		{"UnknownKey", `{"SubsId":"1","Subscription":"2"}`, `unknown key "Subscription"`},
		{"DuplicateKey", `{"SubsId":"1","subsid":"2"}`, `key "subsid" given twice (also as "SubsId")`},
		{"DuplicateMeta", `{"_meta":{},"_META":{}}`, "given twice"},
		{"Array", `{"PhoneNoA":["13800138000"]}`, "PhoneNoA: want a string, number or boolean, got an array"},
		{"Object", `{"OutId":{"a":1}}`, "OutId: want a string, number or boolean, got an object"},
		{"BadMeta", `{"_meta":{"schema":"one"}}`, "_meta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var u Update
			err := json.Unmarshal([]byte(tc.in), &u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unmarshal(%s) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestParams(t *testing.T) {
	u := valid("updateNoA")
	u.IdempotencyKey = "k"
	u.Meta = &Meta{Version: 3}
	want := map[string]string{"PoolKey": "FC100000000000001", "SubsId": "1000000768790001",
		"PhoneNoX": "17000000000", "OperateType": "updateNoA", "PhoneNoA": "13800138000"}
	if got := u.Params(); !reflect.DeepEqual(got, want) {
		t.Errorf("Params() = %v, want %v", got, want)
	}
}

// BenchmarkNormalize is the per-row cost the enqueue CLI pays: a typical CSV
// row (a few fields set, some with stray white space) normalized once.
func BenchmarkNormalize(b *testing.B) {
	row := Update{
		PoolKey: "FC100000000000001", SubsId: " 1000000768790001", PhoneNoX: "17000000000 ",
		OperateType: "updateNoA", PhoneNoA: "13800138000", OutId: "order-42", IsRecordingEnabled: "TRUE",
	}
	b.ReportAllocs()
	for b.Loop() {
		u := row
		u.Normalize()
	}
}

// BenchmarkFieldValue looks up every column by its exact name, as Normalize,
// Params and Validate do.
func BenchmarkFieldValue(b *testing.B) {
	var u Update
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range allColumns {
			_ = FieldValue(&u, f)
		}
	}
}

func TestFieldValueExactNamesDoNotAllocate(t *testing.T) {
	var u Update
	for _, f := range allColumns {
		p := FieldValue(&u, f)
		for _, spelling := range []string{strings.ToLower(f), strings.ToUpper(f), " " + f + "\u3000"} {
			if q := FieldValue(&u, spelling); q != p {
				t.Errorf("FieldValue(%q) is not the field of %q", spelling, f)
			}
			if c, ok := CanonicalField(spelling); !ok || c != f {
				t.Errorf("CanonicalField(%q) = %q, %v", spelling, c, ok)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, f := range allColumns {
			_ = FieldValue(&u, f)
			_, _ = CanonicalField(f)
		}
	}); n != 0 {
		t.Errorf("exact names allocate %v times per lookup of every column", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	payload := []byte(`{"PoolKey":"FC100000012345678","SubsId":"1000000768790001","PhoneNoX":"17000000000","OperateType":"updateOutId","OutId":"order-12345","_meta":{"schema":1,"version":123456,"enqueued_at":"2026-11-29T21:00:00.123456Z","source":"api"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}
