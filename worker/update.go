package worker

import (
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/tasks"
)

// UpdateOf returns the UpdateSubscription parameters of a queued job: the
// one conversion from a job to its call, used by the handler. The
// fields its OperateType does not use ([tasks.Update.Unused]) are left out,
// as the API would ignore them: a job queued before they were dropped at
// enqueue sends the same call as one queued after.
func UpdateOf(u tasks.Update) dypls.Update {
	u.DropUnused()
	return dypls.Update{
		PoolKey: u.PoolKey, ProductType: u.ProductType, SubsId: u.SubsId, PhoneNoX: u.PhoneNoX,
		OperateType: u.OperateType, PhoneNoA: u.PhoneNoA, PhoneNoB: u.PhoneNoB, Expiration: u.Expiration,
		GroupId: u.GroupId, CallRestrict: u.CallRestrict, CallDisplayType: u.CallDisplayType, OutId: u.OutId,
		IsRecordingEnabled: u.IsRecordingEnabled, RingConfig: u.RingConfig, ASRStatus: u.ASRStatus, ASRModelId: u.ASRModelId,
	}
}
