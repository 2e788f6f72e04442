package safebuf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// Log returns a Buffer for a process's log that, when the test ends,
// checks every JSON line written to it: each must parse, and no object may
// hold a key twice (log pipelines keep only one of them). Lines that are not
// JSON objects (console format, command output) are left alone.
func Log(t testing.TB) *Buffer {
	b := &Buffer{}
	t.Cleanup(func() { CheckLog(t, b.String()) })
	return b
}

// CheckLog fails t for each JSON line of log that does not parse or repeats
// a key.
func CheckLog(t testing.TB, log string) {
	t.Helper()
	bad := 0
	for i, line := range strings.Split(log, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if err := DuplicateKeys([]byte(line)); err != nil {
			if bad++; bad <= 5 {
				t.Errorf("log line %d: %v\n%s", i+1, err, line)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%d log lines in all break the log format", bad)
	}
}

// DuplicateKeys returns an error naming the first key that an object of the
// JSON value in b holds twice, or why b is not one JSON value.
func DuplicateKeys(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := walk(d); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value")
	}
	return nil
}

// walk reads one value from d, checking the keys of every object in it.
func walk(d *json.Decoder) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			if seen[key] {
				return fmt.Errorf("key %q appears twice", key)
			}
			seen[key] = true
			if err := walk(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
		return err
	case json.Delim('['):
		for d.More() {
			if err := walk(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
		return err
	}
	return nil
}
