// Package tasks defines the dyplsq job: an Alibaba Cloud privacy-number
// (Dyplsapi) UpdateSubscription call, queued on Redis through asynq and
// applied by the dyplsq worker. Business systems enqueue with it, the worker
// decodes with it, and the enqueue CLI builds jobs from CSV and JSON Lines
// rows with it. It imports only asynq and go-redis, never the Alibaba SDK.
//
// # Enqueueing
//
// A business system shares one go-redis client with asynq and enqueues
// through a [Producer]:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	p := tasks.NewProducer(rdb)
//	res, err := p.Enqueue(ctx, tasks.Update{
//		PoolKey:        "FC100000000000001",
//		SubsId:         "1000000768790001",
//		PhoneNoX:       "17000000000",
//		OperateType:    "updateNoA",
//		PhoneNoA:       "13800138000",
//		IdempotencyKey: "order-42/new-a",
//	})
//
// Enqueue validates first and returns a [*ValidationError] listing every
// problem, field by field, without queueing anything. A repeated
// IdempotencyKey is reported as Result.Duplicate, not as an error. Jobs go
// to [DefaultLiveQueue] unless Producer.Queue or an asynq.Queue option says
// otherwise; the CLI uses [DefaultBulkQueue].
//
// # Payload
//
// The task type is [TypeUpdateSubscription]. The payload is a JSON object
// whose keys are the API's own parameter names ([Fields]), all values
// strings, plus the optional IdempotencyKey and one metadata object under
// "_meta" ([Meta]):
//
//	{"PoolKey":"FC100000000000001","SubsId":"1000000768790001",
//	 "PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13800138000",
//	 "_meta":{"schema":1,"version":42,"enqueued_at":"2025-01-01T00:00:00Z","source":"api"}}
//
// Decoding ([Decode], [Update.UnmarshalJSON]) also takes JSON numbers and
// booleans for values (CallDisplayType 1, IsRecordingEnabled true), as JSON
// Lines files have them, and matches keys in any case.
//
// # Metadata and versions
//
// Meta holds what dyplsq adds: the schema ([SchemaVersion]; a worker
// refuses newer ones), the job version, the enqueue time, and for CLI
// batches the batch id and input line, and for replayed dead letters the
// task id they replay.
//
// The newest update of a binding field (SubsId, OperateType) wins: a worker
// applies a job only if its version is newer than the last one applied to
// that field, and reports older ones as superseded without calling the API.
// Versions come from one Redis counter ([VersionKey], [NextVersions]) taken
// at enqueue time, so they follow enqueue order, and line order within a
// CLI file. A job enqueued with plain asynq and no "_meta.version" (for
// example through [NewTask] and an asynq.Client) gets its version when a
// worker first picks it up. That is a weaker guarantee: such a job is
// ordered by when it started to run, not by when it was queued, so of two
// such jobs queued close together the one queued first may win.
package tasks
