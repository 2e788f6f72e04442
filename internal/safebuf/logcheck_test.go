package safebuf

import "testing"

func TestDuplicateKeys(t *testing.T) {
	for line, ok := range map[string]bool{
		`{"level":"info","message":"job dead"}`:                     true,
		`{"a":{"b":1},"c":[{"b":2},{"b":3}]}`:                       true,
		`{"message":"binding does not exist","message":"job dead"}`: false,
		`{"component":"worker","component":"asynq","message":"x"}`:  false,
		`{"a":[{"b":1,"b":2}]}`:                                     false,
		`{"a":1`:                                                    false,
		`{"a":1}{"b":2}`:                                            false,
	} {
		if err := DuplicateKeys([]byte(line)); (err == nil) != ok {
			t.Errorf("%s: %v", line, err)
		}
	}
}
