package dypls_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestValidatorAgreesWithSimulator sends rows the validator accepts and
// rows it refuses through the real path of a job (payload, decode, the SDK)
// to the simulator: what the validator accepts the simulator applies, and
// what it refuses the simulator refuses too. Fields the OperateType does
// not use are accepted by both.
func TestValidatorAgreesWithSimulator(t *testing.T) {
	t.Parallel()
	sim, addr := startSim(t, dyplsim.Config{Seed: 2, RandSeed: 1})
	c := newClient(t, addr)
	b := dyplsim.SeedBinding(1)
	in := func(d time.Duration) string {
		return time.Now().Add(d).In(tasks.Beijing).Format(tasks.ExpirationLayout)
	}
	cases := []struct {
		name string
		set  func(u *tasks.Update)
	}{
		{"GroupId", func(u *tasks.Update) { u.OperateType, u.GroupId = "updateAxgGroup", "1234" }},
		{"GroupIdLetters", func(u *tasks.Update) { u.OperateType, u.GroupId = "updateAxgGroup", "abc" }},
		{"GroupIdNegative", func(u *tasks.Update) { u.OperateType, u.GroupId = "updateAxgGroup", "-5" }},
		{"GroupIdZero", func(u *tasks.Update) { u.OperateType, u.GroupId = "updateAxgGroup", "0" }},
		{"Expiration", func(u *tasks.Update) { u.OperateType, u.Expiration = "updateExpire", in(48*time.Hour) }},
		{"ExpirationMillis", func(u *tasks.Update) { u.OperateType, u.Expiration = "updateExpire", in(48*time.Hour)+".000" }},
		{"ExpirationDoubleSpace", func(u *tasks.Update) {
			u.OperateType, u.Expiration = "updateExpire", strings.Replace(in(48*time.Hour), " ", "  ", 1)
		}},
		{"ExpirationSoon", func(u *tasks.Update) { u.OperateType, u.Expiration = "updateExpire", in(5*time.Minute) }},
		{"RingConfig", func(u *tasks.Update) {
			u.OperateType, u.OutId, u.RingConfig = "updateOutId", "o", `{"AXBRing_A":"100000001","AXGRing_G":"2"}`
		}},
		{"RingConfigText", func(u *tasks.Update) { u.OperateType, u.OutId, u.RingConfig = "updateOutId", "o", "ring-42" }},
		{"RingConfigUnknownKey", func(u *tasks.Update) { u.OperateType, u.OutId, u.RingConfig = "updateOutId", "o", `{"AXBRing_Z":"1"}` }},
		{"RingConfigNumber", func(u *tasks.Update) { u.OperateType, u.OutId, u.RingConfig = "updateOutId", "o", `{"AXBRing_A":1}` }},
		{"UpdateAsrOn", func(u *tasks.Update) { u.OperateType, u.ASRStatus, u.ASRModelId = "updateAsr", "true", "m1" }},
		{"UpdateAsrOff", func(u *tasks.Update) { u.OperateType, u.ASRStatus = "updateAsr", "false" }},
		{"UpdateAsrOnNoModel", func(u *tasks.Update) { u.OperateType, u.ASRStatus = "updateAsr", "true" }},
		{"UpdateAsrNotBool", func(u *tasks.Update) { u.OperateType, u.ASRStatus = "updateAsr", "on" }},
		{"UnusedStaleExpiration", func(u *tasks.Update) {
			u.OperateType, u.OutId, u.Expiration = "updateOutId", "o2", "2000-01-01 00:00:00"
		}},
		{"UnusedBadASRStatus", func(u *tasks.Update) { u.OperateType, u.OutId, u.ASRStatus = "updateOutId", "o3", "on" }},
		{"UnusedBadPhoneNoA", func(u *tasks.Update) {
			u.OperateType, u.IsRecordingEnabled, u.PhoneNoA = "updateIsRecordingEnabled", "true", "x"
		}},
	}
	for _, tc := range cases {
		u := tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX}
		tc.set(&u)
		u.Normalize()
		verr := u.Validate(time.Now())
		sent := u
		if verr == nil {
			task, err := tasks.NewTask(u)
			if err != nil {
				t.Fatalf("%s: NewTask: %v", tc.name, err)
			}
			if sent, err = tasks.Decode(task.Payload()); err != nil {
				t.Fatalf("%s: Decode: %v", tc.name, err)
			}
		}
		_, err := c.UpdateSubscription(bg, worker.UpdateOf(sent))
		if (verr == nil) != (err == nil) {
			t.Errorf("%s: validator says %v, simulator says %v", tc.name, verr, err)
		}
	}
	_ = sim
}
