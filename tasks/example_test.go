package tasks_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/dyplsq/dyplsq/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// A business system enqueues one binding update. The second Enqueue of the
// same IdempotencyKey is reported as already queued.
func ExampleProducer_Enqueue() {
	rdb, cleanup := exampleRedis()
	defer cleanup()

	p := tasks.NewProducer(rdb)
	p.Queue, p.KeyPrefix = exampleQueue, examplePrefix // normally left at their defaults

	u := tasks.Update{
		PoolKey:        "FC100000000000001",
		SubsId:         "1000000768790001",
		PhoneNoX:       "17000000000",
		OperateType:    "updateNoA",
		PhoneNoA:       "13800138000",
		IdempotencyKey: "order-42/new-a",
	}
	ctx := context.Background()
	res, err := p.Enqueue(ctx, u)
	if err != nil {
		fmt.Println("enqueue:", err)
		return
	}
	fmt.Println("queued", res.TaskID, "version", res.Version)

	res, err = p.Enqueue(ctx, u)
	if err != nil {
		fmt.Println("enqueue:", err)
		return
	}
	fmt.Println("duplicate:", res.Duplicate)

	u.PhoneNoA = "138-0013-8000"
	_, err = p.Enqueue(ctx, u)
	fmt.Println(err)
	// Output:
	// queued idem_mb2qrxcp9qbg38keiu33wievxs version 1
	// duplicate: true
	// PhoneNoA: must be digits only (mobile 1xxxxxxxxxx, or landline 0 + area code + number, 10 to 12 digits, no hyphen); got "138******8000", 13 characters, first non-digit '-' at position 4; remove hyphens and spaces
}

// The example runs against REDIS_URL (default redis://127.0.0.1:6379/0) in
// a queue and key prefix of its own, removed afterwards.
var exampleQueue, examplePrefix = func() (string, string) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "example" + hex.EncodeToString(b[:])
	return ns + "-live", ns
}()

func exampleRedis() (*redis.Client, func()) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(opt)
	return rdb, func() {
		_ = asynq.NewInspectorFromRedisClient(rdb).DeleteQueue(exampleQueue, true)
		rdb.Del(context.Background(), tasks.VersionKey(examplePrefix))
		rdb.Close()
	}
}
