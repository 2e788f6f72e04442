package tasks

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// futureUpdate returns a valid update that stays valid at the real time.
func futureUpdate() Update {
	u := valid("updateExpire")
	u.Expiration = time.Now().Add(48 * time.Hour).In(Beijing).Format(ExpirationLayout)
	return u
}

func TestTaskIDForKey(t *testing.T) {
	id := TaskIDForKey("order-42/new-a")
	if want := "idem_mb2qrxcp9qbg38keiu33wievxs"; id != want {
		t.Errorf("TaskIDForKey = %q, want %q", id, want)
	}
	// asynqmon shows an id up to its first "-": this one shows whole, and
	// masking sees no phone number in it.
	if strings.Contains(id, "-") || strings.ContainsAny(id, "01") {
		t.Errorf("TaskIDForKey = %q holds a - or a digit run masking could take", id)
	}
	if want := "idem-5870e7d44dfb826cf94444b39a2093ac"; LegacyTaskIDForKey("order-42/new-a") != want { // printf 'order-42/new-a' | sha256sum
		t.Errorf("LegacyTaskIDForKey = %q, want %q", LegacyTaskIDForKey("order-42/new-a"), want)
	}
	if TaskIDForKey("order-42/new-a") != id {
		t.Error("TaskIDForKey is not stable")
	}
	if TaskIDForKey("order-42/new-b") == id {
		t.Error("different keys give the same id")
	}
	// Any key is safe, even one asynq would reject as blank.
	if got := TaskIDForKey(" \n\x00:{}"); len(got) != 31 {
		t.Errorf("TaskIDForKey of an odd key = %q", got)
	}
}

func TestNewTaskDefaults(t *testing.T) {
	// A private server: the default queue must not touch the shared one.
	srv := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)

	u := futureUpdate()
	u.IdempotencyKey = "key-1"
	task, err := NewTask(u)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeUpdateSubscription {
		t.Errorf("Type() = %q", task.Type())
	}
	info, err := client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != DefaultLiveQueue || info.MaxRetry != 1000 || info.Retention != 24*time.Hour ||
		info.Timeout != 5*time.Minute || info.ID != TaskIDForKey("key-1") {
		t.Errorf("defaults: queue %q, max retry %d, retention %v, timeout %v, id %q",
			info.Queue, info.MaxRetry, info.Retention, info.Timeout, info.ID)
	}

	got, err := Decode(info.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta == nil || got.Meta.Schema != SchemaVersion || got.Meta.Version != 0 ||
		time.Since(got.Meta.EnqueuedAt) > time.Minute || got.Meta.EnqueuedAt.Location() != time.UTC {
		t.Errorf("Meta = %+v, want schema 1, no version, enqueued now (UTC)", got.Meta)
	}
	got.Meta = nil
	if !reflect.DeepEqual(got, u) {
		t.Errorf("payload decodes to %+v, want %+v", got, u)
	}

	// Without a key, asynq picks a random id.
	u.IdempotencyKey = ""
	task, _ = NewTask(u)
	info, err = client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(info.ID, "idem-") {
		t.Errorf("id %q without an idempotency key", info.ID)
	}
}

func TestNewTaskOptionsOverrideDefaults(t *testing.T) {
	rdb := redistest.Client(t)
	q := redistest.Namespace(t)
	cleanupQueue(t, rdb, q)
	u := futureUpdate()
	u.IdempotencyKey = "key-1"
	task, err := NewTask(u, asynq.Queue(q), asynq.MaxRetry(3), asynq.TaskID("mine"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := asynq.NewClientFromRedisClient(rdb).Enqueue(task, asynq.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != q || info.MaxRetry != 3 || info.ID != "mine" || info.Retention != time.Hour || info.Timeout != 5*time.Minute {
		t.Errorf("queue %q, max retry %d, id %q, retention %v, timeout %v", info.Queue, info.MaxRetry, info.ID, info.Retention, info.Timeout)
	}
}

func TestNewTaskValidates(t *testing.T) {
	u := futureUpdate()
	u.PhoneNoX = "170-0000-0000"
	_, err := NewTask(u)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Problems[0].Field != "PhoneNoX" {
		t.Fatalf("NewTask: %v, want a ValidationError for PhoneNoX", err)
	}

	// Values are trimmed, and the caller's Meta is not written to.
	u = futureUpdate()
	u.SubsId = "\u30001000000768790001 "
	meta := &Meta{Batch: "b"}
	u.Meta = meta
	task, err := NewTask(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := Decode(task.Payload())
	if got.SubsId != "1000000768790001" || got.Meta.Batch != "b" || got.Meta.Schema != 1 {
		t.Errorf("decoded %+v %+v", got, got.Meta)
	}
	if *meta != (Meta{Batch: "b"}) {
		t.Errorf("NewTask changed the caller's Meta: %+v", *meta)
	}
}

func TestDecode(t *testing.T) {
	good := `{"PoolKey":"FC1","SubsId":"1000000768790001","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13800138000"`
	tests := []struct {
		name    string
		payload string
		want    string // error substring; "" for success
		schema  bool   // the error wraps ErrUnsupportedSchema
		fields  []string
	}{
		{"Plain", good + `}`, "", false, nil},
		{"WithMeta", good + `,"_meta":{"schema":1,"version":5,"enqueued_at":"2025-01-01T00:00:00Z"}}`, "", false, nil},
		{"SchemaZero", good + `,"_meta":{"schema":0}}`, "", false, nil},
		{"NotJSON", `{"SubsId":`, "malformed payload", false, nil},
		{"Empty", ``, "malformed payload", false, nil},
		{"UnknownKey", good + `,"Extra":"1"}`, `unknown key "Extra"`, false, nil},
		{"TrailingData", good + `} x`, "after top-level value", false, nil},
		{"TwoObjects", good + `}{}`, "after top-level value", false, nil},
		{"TrailingDataAfterANumber", good + `,"OutId":1} x`, "after top-level value", false, nil},
		{"NewerSchema", good + `,"_meta":{"schema":2}}`, "_meta.schema is 2, this code understands up to 1: upgrade the worker", true, nil},
		{"NegativeSchema", good + `,"_meta":{"schema":-1}}`, "_meta.schema is -1", false, nil},
		{"NegativeVersion", good + `,"_meta":{"schema":1,"version":-4}}`, "_meta.version is -4", false, nil},
		{"MissingRequired", `{"PoolKey":"FC1","PhoneNoA":"13800138000"}`, "SubsId: required; PhoneNoX: required; OperateType: required", false,
			[]string{"SubsId", "PhoneNoX", "OperateType"}},
		{"BlankRequired", `{"SubsId":" ","PhoneNoX":"17000000000","OperateType":"\u3000"}`, "SubsId: required; OperateType: required", false,
			[]string{"SubsId", "OperateType"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := Decode([]byte(tc.payload))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if u.SubsId != "1000000768790001" || u.PhoneNoA != "13800138000" {
					t.Errorf("Decode = %+v", u)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode: %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if errors.Is(err, ErrUnsupportedSchema) != tc.schema {
				t.Errorf("errors.Is(%v, ErrUnsupportedSchema) = %v", err, !tc.schema)
			}
			var ve *ValidationError
			if tc.fields != nil {
				if !errors.As(err, &ve) || len(ve.Problems) != len(tc.fields) {
					t.Fatalf("error %v does not wrap a ValidationError for %v", err, tc.fields)
				}
				for i, f := range tc.fields {
					if ve.Problems[i].Field != f {
						t.Errorf("problem %d is for %s, want %s", i, ve.Problems[i].Field, f)
					}
				}
			}
		})
	}

	// A payload without _meta (plain asynq) has no Meta.
	u, err := Decode([]byte(good + `}`))
	if err != nil || u.Meta != nil {
		t.Errorf("Decode without _meta: %+v, %v", u.Meta, err)
	}
	// Decode normalizes.
	u, err = Decode([]byte(`{"SubsId":" 1 ","PhoneNoX":"17000000000\u3000","OperateType":"updateIsRecordingEnabled","IsRecordingEnabled":true}`))
	if err != nil || u.SubsId != "1" || u.PhoneNoX != "17000000000" || u.IsRecordingEnabled != "true" {
		t.Errorf("Decode: %+v, %v", u, err)
	}
}

// cleanupQueue deletes queue q (and its tasks) when the test ends.
func cleanupQueue(t *testing.T, rdb redis.UniversalClient, q string) {
	t.Helper()
	t.Cleanup(func() {
		err := asynq.NewInspectorFromRedisClient(rdb).DeleteQueue(q, true)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Errorf("delete queue %s: %v", q, err)
		}
	})
}

// cleanupKeys deletes keys when the test ends.
func cleanupKeys(t *testing.T, rdb redis.UniversalClient, keys ...string) {
	t.Helper()
	t.Cleanup(func() { rdb.Del(context.Background(), keys...) })
}
