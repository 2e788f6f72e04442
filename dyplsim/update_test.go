package dyplsim

import (
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"
)

func TestUpdateSubscriptionEveryOperateType(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 3, RandSeed: 1})
	c := newClient(t, addr)
	b := SeedBinding(1)
	newExpiry := beijingIn(48 * time.Hour)

	tests := []struct {
		op    string
		set   func(r *dyplsapi.UpdateSubscriptionRequest)
		check func(t *testing.T, d dyplsapi.SecretBindDetailDTO, stored Binding)
	}{
		{"updateNoA", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoA = "13612345678" },
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.PhoneNoA != "13612345678" {
					t.Errorf("PhoneNoA = %s", d.PhoneNoA)
				}
			}},
		{"updateNoB", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoB = "01012345678" },
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.PhoneNoB != "01012345678" {
					t.Errorf("PhoneNoB = %s", d.PhoneNoB)
				}
			}},
		{"updateExpire", func(r *dyplsapi.UpdateSubscriptionRequest) { r.Expiration = newExpiry },
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.ExpireDate != newExpiry || d.Status != 1 {
					t.Errorf("ExpireDate = %s, Status %d; want %s, 1", d.ExpireDate, d.Status, newExpiry)
				}
			}},
		{"updateAxgGroup", func(r *dyplsapi.UpdateSubscriptionRequest) { r.GroupId = "1234" },
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.GroupId != 1234 {
					t.Errorf("GroupId = %d", d.GroupId)
				}
			}},
		{"updateCallRestrict", func(r *dyplsapi.UpdateSubscriptionRequest) { r.CallRestrict = "CONTROL_BX_DISABLE" },
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.CallRestrict != "CONTROL_BX_DISABLE" {
					t.Errorf("CallRestrict = %q", d.CallRestrict)
				}
			}},
		{"updateCallRestrict", func(r *dyplsapi.UpdateSubscriptionRequest) { r.CallRestrict = "CONTROL_CLEAR_DISABLE" },
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.CallRestrict != "" {
					t.Errorf("CallRestrict = %q after CLEAR", d.CallRestrict)
				}
			}},
		{"updateCallDisplayType", func(r *dyplsapi.UpdateSubscriptionRequest) { r.CallDisplayType = requests.NewInteger(1) },
			func(t *testing.T, _ dyplsapi.SecretBindDetailDTO, s Binding) {
				if s.CallDisplayType != 1 {
					t.Errorf("CallDisplayType = %d", s.CallDisplayType)
				}
			}},
		{"updateOutId", func(r *dyplsapi.UpdateSubscriptionRequest) { r.OutId = "order a b*c~d/é" },
			func(t *testing.T, _ dyplsapi.SecretBindDetailDTO, s Binding) {
				if s.OutId != "order a b*c~d/é" {
					t.Errorf("OutId = %q", s.OutId)
				}
			}},
		{"updateIsRecordingEnabled", func(r *dyplsapi.UpdateSubscriptionRequest) {
			r.IsRecordingEnabled = requests.NewBoolean(true)
			r.ASRStatus = requests.NewBoolean(true) // not used by updateIsRecordingEnabled: ignored
			r.ASRModelId = "model-0"
			r.Expiration = "2000-01-01 00:00:00" // not used either, and invalid: ignored
		},
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if !d.NeedRecord || d.ASRStatus || d.ASRModelId == "model-0" {
					t.Errorf("NeedRecord %v ASRStatus %v ASRModelId %q", d.NeedRecord, d.ASRStatus, d.ASRModelId)
				}
			}},
		{"updateAsr", func(r *dyplsapi.UpdateSubscriptionRequest) {
			r.ASRStatus = requests.NewBoolean(true)
			r.ASRModelId = "model-1"
			r.RingConfig = `{"AXBRing_A":"100000001","AXBRing_B":"100000002"}`
		},
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, s Binding) {
				if !d.ASRStatus || d.ASRModelId != "model-1" || s.RingConfig != `{"AXBRing_A":"100000001","AXBRing_B":"100000002"}` {
					t.Errorf("ASRStatus %v ASRModelId %q RingConfig %q", d.ASRStatus, d.ASRModelId, s.RingConfig)
				}
			}},
		{"updateAxgGroup", func(r *dyplsapi.UpdateSubscriptionRequest) {
			r.GroupId = "5678"
			r.PhoneNoA = "not a number" // not used by updateAxgGroup: ignored
		},
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.GroupId != 5678 {
					t.Errorf("GroupId = %d", d.GroupId)
				}
			}},
		{"updateIsRecordingEnabled", func(r *dyplsapi.UpdateSubscriptionRequest) { r.IsRecordingEnabled = requests.NewBoolean(false) },
			func(t *testing.T, d dyplsapi.SecretBindDetailDTO, _ Binding) {
				if d.NeedRecord {
					t.Errorf("NeedRecord still true")
				}
			}},
	}
	for _, tt := range tests {
		r := updateReq(1, tt.op)
		tt.set(r)
		if code := mustUpdate(t, c, r); code != "OK" {
			t.Fatalf("%s: Code %s", tt.op, code)
		}
		stored, _ := sim.Binding(b.SubsId)
		tt.check(t, detail(t, c, b.SubsId, b.PhoneNoX), stored)
	}
	if st := sim.Stats(); st.Applied != len(tests) || st.Calls["UpdateSubscription"]["OK"] != len(tests) {
		t.Errorf("stats %+v", st)
	}
	// Binding 2 untouched.
	if d := detail(t, c, SeedBinding(2).SubsId, SeedBinding(2).PhoneNoX); d.PhoneNoA != SeedBinding(2).PhoneNoA || d.NeedRecord {
		t.Errorf("binding 2 changed: %+v", d)
	}
}

func TestUpdateSubscriptionValidation(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 2, RandSeed: 1})
	c := newClient(t, addr)
	before := sim.Bindings()

	type mut = func(r *dyplsapi.UpdateSubscriptionRequest)
	tests := []struct {
		name, op, want string
		set            mut
	}{
		{"NoPoolKeyNoProductType", "updateOutId", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PoolKey = ""; r.OutId = "x" }},
		{"UnknownProductType", "updateOutId", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PoolKey = ""; r.ProductType = "AXB_999"; r.OutId = "x" }},
		{"UnknownPoolKey", "updateOutId", "isv.POOLKEY_NOT_EXISTS", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PoolKey = "FC999"; r.OutId = "x" }},
		{"XNotOwned", "updateOutId", "isv.NO_NOT_EXIST", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoX = "17100000000"; r.OutId = "x" }},
		{"XNotOwnedProductType", "updateOutId", "isv.NO_NOT_EXIST", func(r *dyplsapi.UpdateSubscriptionRequest) {
			r.PoolKey = ""
			r.ProductType = "AXB_170"
			r.PhoneNoX = "17100000000"
			r.OutId = "x"
		}},
		{"UnknownSubsId", "updateOutId", "isv.SUBS_NOT_EXIST", func(r *dyplsapi.UpdateSubscriptionRequest) { r.SubsId = "1999999999999999"; r.OutId = "x" }},
		{"XOfAnotherBinding", "updateOutId", "isv.SUBS_NOT_EXIST", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoX = SeedBinding(2).PhoneNoX; r.OutId = "x" }},
		{"UnknownOperateType", "updateSomething", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateNoAWithoutPhoneNoA", "updateNoA", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoB = "13700000000" }},
		{"UpdateNoBWithoutPhoneNoB", "updateNoB", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateExpireWithoutExpiration", "updateExpire", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateAxgGroupWithoutGroupId", "updateAxgGroup", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateAxgGroupNotNumber", "updateAxgGroup", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.GroupId = "g1" }},
		{"UpdateAxgGroupNegative", "updateAxgGroup", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.GroupId = "-5" }},
		{"UpdateAxgGroupZero", "updateAxgGroup", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.GroupId = "0" }},
		{"UpdateAxgGroupPlus", "updateAxgGroup", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.GroupId = "+5" }},
		{"ExpirationMillis", "updateExpire", "isv.EXPIRE_DATE_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.Expiration = beijingIn(48*time.Hour) + ".000" }},
		{"ExpirationDoubleSpace", "updateExpire", "isv.EXPIRE_DATE_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) {
			r.Expiration = strings.Replace(beijingIn(48*time.Hour), " ", "  ", 1)
		}},
		{"RingConfigNotJSON", "updateOutId", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.OutId = "x"; r.RingConfig = "ring-42" }},
		{"RingConfigUnknownKey", "updateOutId", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.OutId = "x"; r.RingConfig = `{"AXBRing_C":"1"}` }},
		{"RingConfigNumberCode", "updateOutId", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.OutId = "x"; r.RingConfig = `{"AXBRing_A":1}` }},
		{"UpdateAsrWithout", "updateAsr", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateAsrNotBool", "updateAsr", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.ASRStatus = "on" }},
		{"UpdateAsrOnWithoutModel", "updateAsr", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.ASRStatus = requests.NewBoolean(true) }},
		{"UpdateCallRestrictWithout", "updateCallRestrict", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateCallRestrictBad", "updateCallRestrict", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.CallRestrict = "CONTROL_XX_DISABLE" }},
		{"UpdateCallDisplayTypeWithout", "updateCallDisplayType", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateCallDisplayType2", "updateCallDisplayType", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.CallDisplayType = requests.NewInteger(2) }},
		{"UpdateOutIdWithout", "updateOutId", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateIsRecordingEnabledWithout", "updateIsRecordingEnabled", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) {}},
		{"UpdateIsRecordingEnabledBad", "updateIsRecordingEnabled", "isv.ILLEGAL_ARGUMENT", func(r *dyplsapi.UpdateSubscriptionRequest) { r.IsRecordingEnabled = "yes" }},
		{"ExpirationBadFormat", "updateExpire", "isv.EXPIRE_DATE_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.Expiration = "2030-09-05T12:00:00" }},
		{"ExpirationDateOnly", "updateExpire", "isv.EXPIRE_DATE_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.Expiration = "2030-09-05" }},
		{"ExpirationInPast", "updateExpire", "isv.EXPIRE_DATE_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.Expiration = beijingIn(-time.Hour) }},
		{"ExpirationWithinMinute", "updateExpire", "isv.EXPIRE_DATE_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.Expiration = beijingIn(30 * time.Second) }},
		{"PhoneNoALetters", "updateNoA", "isv.MOBILE_NUMBER_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoA = "1380000000a" }},
		{"PhoneNoAHyphen", "updateNoA", "isv.MOBILE_NUMBER_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoA = "010-12345678" }},
		{"PhoneNoAShort", "updateNoA", "isv.MOBILE_NUMBER_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoA = "1380000000" }},
		{"PhoneNoBLong", "updateNoB", "isv.MOBILE_NUMBER_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoB = "0101234567890" }},
		{"PhoneNoBSpace", "updateNoB", "isv.MOBILE_NUMBER_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoB = "139 0000 0000" }},
		{"PhoneNoBPrefix2", "updateNoB", "isv.MOBILE_NUMBER_ILLEGAL", func(r *dyplsapi.UpdateSubscriptionRequest) { r.PhoneNoB = "23900000000" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := updateReq(1, tt.op)
			tt.set(r)
			resp, err := c.UpdateSubscription(r)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tt.want || resp.GetHttpStatus() != 200 || resp.Message == "" {
				t.Fatalf("Code %s (HTTP %d, %q), want %s", resp.Code, resp.GetHttpStatus(), resp.Message, tt.want)
			}
		})
	}
	after := sim.Bindings()
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("failed calls changed binding %s:\n%+v\n%+v", before[i].SubsId, before[i], after[i])
		}
	}
	if sim.Stats().Applied != 0 {
		t.Errorf("Applied = %d", sim.Stats().Applied)
	}

	// ProductType instead of PoolKey, and a landline, are fine.
	r := updateReq(1, "updateNoA")
	r.PoolKey, r.ProductType, r.PhoneNoA = "", "AXB_170", "075512345678"
	if code := mustUpdate(t, c, r); code != "OK" {
		t.Fatalf("ProductType update: %s", code)
	}
}

func TestBindConflict(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{Seed: 1, RandSeed: 1})
	c := newClient(t, addr)
	one := SeedBinding(1) // A 13800000000, B 13900000000, X 17000000000
	two := sim.PutBinding(Binding{PhoneNoX: one.PhoneNoX, PhoneNoA: "13600000000", PhoneNoB: "13700000000"})

	try := func(op, phone string) string {
		r := updateReq(1, op)
		r.SubsId = two.SubsId
		if op == "updateNoA" {
			r.PhoneNoA = phone
		} else {
			r.PhoneNoB = phone
		}
		return mustUpdate(t, c, r)
	}
	for _, tc := range []struct{ op, phone string }{
		{"updateNoA", one.PhoneNoA}, {"updateNoA", one.PhoneNoB}, {"updateNoB", one.PhoneNoB}, {"updateNoB", one.PhoneNoA},
	} {
		if code := try(tc.op, tc.phone); code != "isv.BIND_CONFLICT" {
			t.Errorf("%s to a number bound with the same X: %s", tc.op, code)
		}
	}
	// A number bound with another X does not conflict.
	if code := try("updateNoA", "13800009999"); code != "OK" {
		t.Errorf("free number: %s", code)
	}
	// Once the holder has expired, its numbers are free again.
	expired := one
	expired.ExpireDate = beijingIn(-time.Hour)
	sim.PutBinding(expired)
	if code := try("updateNoB", one.PhoneNoB); code != "OK" {
		t.Errorf("number of an expired binding: %s", code)
	}

	// BindAxb with a number already bound with that X.
	r := dyplsapi.CreateBindAxbRequest()
	r.PoolKey, r.PhoneNoX, r.PhoneNoA, r.PhoneNoB, r.Expiration = DefaultPoolKey, one.PhoneNoX, "13600000001", one.PhoneNoB, beijingIn(time.Hour)
	resp, err := c.BindAxb(r)
	if err != nil || resp.Code != "isv.BIND_CONFLICT" {
		t.Fatalf("BindAxb: %v %+v", err, resp)
	}
}

func TestForbiddenActionOnExpiredBinding(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{RandSeed: 1})
	c := newClient(t, addr)
	b := sim.PutBinding(Binding{PhoneNoA: "13800000000", PhoneNoB: "13900000000", ExpireDate: beijingIn(-time.Minute)})
	if b.Status != 0 {
		t.Fatalf("Status %d for an expired binding", b.Status)
	}
	for _, op := range []string{"updateExpire", "updateNoA", "updateNoB"} {
		r := updateReq(1, op)
		r.SubsId, r.PhoneNoX = b.SubsId, b.PhoneNoX
		r.Expiration, r.PhoneNoA, r.PhoneNoB = beijingIn(time.Hour), "13600000000", "13700000000"
		if code := mustUpdate(t, c, r); code != "isv.FORBIDDEN_ACTION" {
			t.Errorf("%s on expired binding: %s", op, code)
		}
	}
	r := updateReq(1, "updateOutId")
	r.SubsId, r.PhoneNoX, r.OutId = b.SubsId, b.PhoneNoX, "still-allowed"
	if code := mustUpdate(t, c, r); code != "OK" {
		t.Errorf("updateOutId on expired binding: %s", code)
	}
	if d := detail(t, c, b.SubsId, b.PhoneNoX); d.Status != 0 {
		t.Errorf("detail Status %d", d.Status)
	}
}

func TestSameValueConflicts(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		sim, addr := startSim(t, Config{Seed: 1, RandSeed: 1, SameValueConflicts: on})
		c := newClient(t, addr)
		want := "OK"
		if on {
			want = "isv.BIND_CONFLICT"
		}
		a := updateReq(1, "updateNoA")
		a.PhoneNoA = SeedBinding(1).PhoneNoA
		b := updateReq(1, "updateNoB")
		b.PhoneNoB = SeedBinding(1).PhoneNoB
		for _, r := range []*dyplsapi.UpdateSubscriptionRequest{a, b} {
			if code := mustUpdate(t, c, r); code != want {
				t.Errorf("SameValueConflicts=%v %s same value: %s, want %s", on, r.OperateType, code, want)
			}
		}
		if got, _ := sim.Binding(SeedBinding(1).SubsId); got.PhoneNoA != SeedBinding(1).PhoneNoA {
			t.Errorf("binding changed: %+v", got)
		}
	}
}

func TestBindQueryUnbind(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, Config{RandSeed: 7})
	c := newClient(t, addr)

	bind := dyplsapi.CreateBindAxbRequest()
	bind.PoolKey, bind.PhoneNoA, bind.PhoneNoB, bind.Expiration = DefaultPoolKey, "13800000000", "13900000000", beijingIn(24*time.Hour)
	bind.IsRecordingEnabled, bind.CallRestrict, bind.OutId = requests.NewBoolean(true), "CONTROL_AX_DISABLE", "o-1"
	resp, err := c.BindAxb(bind)
	if err != nil || resp.Code != "OK" {
		t.Fatalf("BindAxb: %v %+v", err, resp)
	}
	dto := resp.SecretBindDTO
	if len(dto.SubsId) != 16 || dto.SubsId[0] != '2' || len(dto.SecretNo) != 11 || dto.SecretNo[:3] != "170" {
		t.Fatalf("SecretBindDTO %+v", dto)
	}
	d := detail(t, c, dto.SubsId, dto.SecretNo)
	if d.PhoneNoA != "13800000000" || d.PhoneNoB != "13900000000" || d.PhoneNoX != dto.SecretNo || d.Status != 1 ||
		!d.NeedRecord || d.CallRestrict != "CONTROL_AX_DISABLE" || d.ExpireDate != bind.Expiration || d.GmtCreate == "" {
		t.Fatalf("detail %+v", d)
	}
	if stored, ok := sim.Binding(dto.SubsId); !ok || stored.OutId != "o-1" {
		t.Fatalf("stored %+v", stored)
	}

	// BindAxb validation.
	for name, mutate := range map[string]func(r *dyplsapi.BindAxbRequest){
		"isv.MOBILE_NUMBER_ILLEGAL": func(r *dyplsapi.BindAxbRequest) { r.PhoneNoA = "abc" },
		"isv.EXPIRE_DATE_ILLEGAL":   func(r *dyplsapi.BindAxbRequest) { r.Expiration = "tomorrow" },
		"isv.NO_NOT_EXIST":          func(r *dyplsapi.BindAxbRequest) { r.PhoneNoX = "17100000000" },
		"isv.POOLKEY_NOT_EXISTS":    func(r *dyplsapi.BindAxbRequest) { r.PoolKey = "FC0" },
		"isv.ILLEGAL_ARGUMENT":      func(r *dyplsapi.BindAxbRequest) { r.PoolKey = "" },
	} {
		r := dyplsapi.CreateBindAxbRequest()
		r.PoolKey, r.PhoneNoA, r.PhoneNoB, r.Expiration = DefaultPoolKey, "13500000000", "13400000000", beijingIn(time.Hour)
		mutate(r)
		resp, err := c.BindAxb(r)
		if err != nil || resp.Code != name {
			t.Errorf("BindAxb want %s: %v %+v", name, err, resp)
		}
	}

	unbind := dyplsapi.CreateUnbindSubscriptionRequest()
	unbind.PoolKey, unbind.SubsId, unbind.SecretNo = DefaultPoolKey, dto.SubsId, dto.SecretNo
	uresp, err := c.UnbindSubscription(unbind)
	if err != nil || uresp.Code != "OK" {
		t.Fatalf("Unbind: %v %+v", err, uresp)
	}
	q := dyplsapi.CreateQuerySubscriptionDetailRequest()
	q.PoolKey, q.SubsId, q.PhoneNoX = DefaultPoolKey, dto.SubsId, dto.SecretNo
	qresp, err := c.QuerySubscriptionDetail(q)
	if err != nil || qresp.Code != "isv.SUBS_NOT_EXIST" {
		t.Fatalf("Query after unbind: %v %+v", err, qresp)
	}
	u := updateReq(1, "updateOutId")
	u.SubsId, u.PhoneNoX, u.OutId = dto.SubsId, dto.SecretNo, "x"
	if code := mustUpdate(t, c, u); code != "isv.SUBS_NOT_EXIST" {
		t.Fatalf("Update after unbind: %s", code)
	}
	uresp, err = c.UnbindSubscription(unbind)
	if err != nil || uresp.Code != "isv.SUBS_NOT_EXIST" {
		t.Fatalf("second Unbind: %v %+v", err, uresp)
	}
	if _, ok := sim.Binding(dto.SubsId); ok {
		t.Fatal("binding still stored")
	}
}
