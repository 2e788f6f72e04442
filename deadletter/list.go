package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Filter selects records. Zero fields select everything.
type Filter struct {
	// Codes keeps records whose Code is one of these; a code ending in "*"
	// matches by prefix ("isv.*").
	Codes []string
	// Since and Until bound DiedAt: Since inclusive, Until exclusive.
	Since, Until time.Time
	// Queue keeps records of this queue only.
	Queue string
	// TaskIDs keeps the records of these task ids only.
	TaskIDs []string
	// Batch keeps the records of jobs of this CLI batch only.
	Batch string
	// Limit stops after this many matching records; 0 means no limit.
	Limit int
}

func (f Filter) match(r Record) bool {
	if f.Queue != "" && r.Queue != f.Queue {
		return false
	}
	if len(f.TaskIDs) > 0 && !slices.Contains(f.TaskIDs, r.TaskID) {
		return false
	}
	if f.Batch != "" && r.Batch != f.Batch {
		return false
	}
	if len(f.Codes) == 0 {
		return true
	}
	for _, c := range f.Codes {
		if p, ok := strings.CutSuffix(c, "*"); ok && strings.HasPrefix(r.Code, p) || c == r.Code {
			return true
		}
	}
	return false
}

// List returns the records matching f, oldest first.
func (s *Store) List(ctx context.Context, f Filter) ([]Record, error) {
	var out []Record
	err := s.Each(ctx, f, func(r Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// Each calls fn for every record matching f, oldest first, reading the index
// and the records a page at a time. fn may delete the record it is given
// (or any other); records written during the walk may or may not be seen.
// An error from fn stops the walk and is returned. Records of the earlier
// layout are moved into the current one first ([Store.Migrate]).
func (s *Store) Each(ctx context.Context, f Filter, fn func(Record) error) error {
	return s.each(ctx, f, func(r Record, _ []byte) error { return fn(r) })
}

// each is Each, giving fn also the stored bytes of the record, so that it
// can delete the record only as it read it.
func (s *Store) each(ctx context.Context, f Filter, fn func(Record, []byte) error) error {
	if _, err := s.Migrate(ctx); err != nil {
		return err
	}
	lo, hi := "-inf", "+inf"
	if !f.Since.IsZero() {
		lo = strconv.FormatInt(f.Since.UnixMilli(), 10)
	}
	if !f.Until.IsZero() {
		hi = "(" + strconv.FormatInt(f.Until.UnixMilli(), 10)
	}
	c := cursor{min: lo, max: hi}
	n := 0
	for {
		ids, err := c.next(ctx, s.Redis, s.IndexKey())
		if err != nil {
			return fmt.Errorf("deadletter: read index: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		recs, raws, err := s.load(ctx, ids)
		if err != nil {
			return err
		}
		for i, r := range recs {
			if !f.match(r) {
				continue
			}
			if err := fn(r, raws[i]); err != nil {
				return err
			}
			n++
			if f.Limit > 0 && n >= f.Limit {
				return nil
			}
		}
	}
}

// load reads the records of ids in one pipeline, skipping ids whose record
// is gone, and returns them with their stored bytes.
func (s *Store) load(ctx context.Context, ids []string) ([]Record, [][]byte, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.RecordKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("deadletter: read records: %w", err)
	}
	out := make([]Record, 0, len(ids))
	raws := make([][]byte, 0, len(ids))
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("deadletter: read record %s: %w", ids[i], err)
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, nil, fmt.Errorf("deadletter: record %s is unreadable: %w", ids[i], err)
		}
		out = append(out, r)
		raws = append(raws, b)
	}
	return out, raws, nil
}

// cursor walks a ZSET in (score, member) order a page at a time with
// ZRANGEBYSCORE ... LIMIT. It remembers the last entry returned, not an
// offset into the set, so entries deleted behind it (a requeue deleting the
// records it walks) make it skip nothing. Entries sharing one score (records
// that died in the same millisecond) are resumed from their position within
// that score, checked against the last member, falling back to a rescan of
// that score when the set changed under it.
type cursor struct {
	min, max string
	started  bool
	score    float64 // score of the last entry returned
	member   string  // the last entry returned
	pos      int64   // its position among the entries of its score
}

func (c *cursor) next(ctx context.Context, rdb redis.UniversalClient, key string) ([]string, error) {
	if !c.started {
		zs, err := rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: c.min, Max: c.max, Count: pageSize}).Result()
		if err != nil {
			return nil, err
		}
		c.started = true
		return c.advance(zs, 0, false), nil
	}
	lo := strconv.FormatFloat(c.score, 'f', -1, 64)
	off, hinted := c.pos, c.pos > 0
	for {
		zs, err := rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: lo, Max: c.max, Offset: off, Count: pageSize + 1}).Result()
		if err != nil {
			return nil, err
		}
		if hinted {
			hinted = false
			if len(zs) == 0 || zs[0].Score != c.score || zs[0].Member != c.member {
				off = 0 // the set changed before the cursor: rescan this score
				continue
			}
		}
		ids := c.advance(zs, off, true)
		if len(ids) == 0 && len(zs) == pageSize+1 {
			off += int64(len(zs)) // a full page already seen: look further
			continue
		}
		return ids, nil
	}
}

// advance drops from zs (read at offset off from the first entry of score
// c.score when resumed) the entries at or before the cursor, moves the
// cursor to the last entry kept and returns the kept members.
func (c *cursor) advance(zs []redis.Z, off int64, resumed bool) []string {
	last := *c
	ids := make([]string, 0, len(zs))
	first := map[float64]int{} // index in zs of the first entry of each score
	for i, z := range zs {
		m, _ := z.Member.(string)
		if _, ok := first[z.Score]; !ok {
			first[z.Score] = i
		}
		if resumed && z.Score == last.score && m <= last.member {
			continue
		}
		ids = append(ids, m)
		pos := int64(i - first[z.Score])
		if resumed && z.Score == last.score {
			pos += off
		}
		c.score, c.member, c.pos = z.Score, m, pos
	}
	return ids
}
