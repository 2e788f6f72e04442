package admin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

func TestClosest(t *testing.T) {
	known := []string{"dyplsq-bulk", "dyplsq-live", "urgent"}
	for name, want := range map[string]string{
		"dyplsq-lvie": "dyplsq-live", "dyplsq-liev": "dyplsq-live", "dyplsq-bulj": "dyplsq-bulk",
		"dyplsq-live": "", "nosuchqueue": "", "urgnet": "urgent",
	} {
		if got := Closest(name, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestCheckQueues: the default queues, queues asynq has had a task in and
// queues a live worker serves are in use; anything else is refused with a
// suggestion.
func TestCheckQueues(t *testing.T) {
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	used := ns + "-used"
	t.Cleanup(func() { _ = insp.DeleteQueue(used, true) })
	if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(context.Background(), asynq.NewTask("x", nil), asynq.Queue(used)); err != nil {
		t.Fatal(err)
	}
	if err := CheckQueues(insp, "dyplsq-live", "dyplsq-bulk", used); err != nil {
		t.Fatal(err)
	}
	err := CheckQueues(insp, "dyplsq-lvie")
	var ue *UnknownQueueError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `queue "dyplsq-lvie" is not in use`) || !strings.Contains(err.Error(), `did you mean "dyplsq-live"?`) {
		t.Fatalf("typo: %v", err)
	}
	if err := CheckQueues(insp, "nosuchqueue"); err == nil || !strings.Contains(err.Error(), "queues in use: ") {
		t.Fatalf("unknown: %v", err)
	}
}
