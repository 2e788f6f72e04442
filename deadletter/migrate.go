package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Migrate moves the records written by earlier versions, which kept a
// record (<prefix>:dlq:rec:<id>) and its index entry (<prefix>:dlq:index)
// in two Redis Cluster slots, into the current layout, and returns how many
// it moved. A task that has a record in both layouts keeps the current one
// (the later death). Each old record is written to the current layout
// before it is deleted from the old one, so a Migrate cut short loses
// nothing and the next one finishes it. When nothing is left to move it
// costs one command.
//
// [Store.Each] runs it before every walk, and the sweep at every run; the
// sweep also moves an old record its index lost, when it meets the task in
// the archive.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	moved := 0
	for {
		zs, err := s.Redis.ZRangeWithScores(ctx, s.oldIndexKey(), 0, pageSize-1).Result()
		if err != nil {
			return moved, fmt.Errorf("deadletter: read the index of the earlier layout: %w", err)
		}
		if len(zs) == 0 {
			return moved, nil
		}
		for _, z := range zs {
			id, _ := z.Member.(string)
			ok, err := s.migrateOne(ctx, id)
			if err != nil {
				return moved, err
			}
			if ok {
				moved++
			}
		}
	}
}

// migrateOne moves the old-layout record of taskID, if there is one, and
// drops its old index entry. It reports whether there was a record.
func (s *Store) migrateOne(ctx context.Context, taskID string) (bool, error) {
	b, err := s.Redis.Get(ctx, s.oldRecordKey(taskID)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		b = nil
	case err != nil:
		return false, fmt.Errorf("deadletter: read record %s of the earlier layout: %w", taskID, err)
	}
	if b != nil {
		var r Record
		_ = json.Unmarshal(b, &r) // an unreadable record is moved as it is, scored 0
		if _, err := s.putRawIfAbsent(ctx, taskID, b, score(r)); err != nil {
			return false, err
		}
		if err := s.Redis.Del(ctx, s.oldRecordKey(taskID)).Err(); err != nil {
			return false, fmt.Errorf("deadletter: delete record %s of the earlier layout: %w", taskID, err)
		}
	}
	if err := s.Redis.ZRem(ctx, s.oldIndexKey(), taskID).Err(); err != nil {
		return false, fmt.Errorf("deadletter: drop %s from the index of the earlier layout: %w", taskID, err)
	}
	return b != nil, nil
}
