package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/dyplsq/dyplsq/mask"
)

// PayloadFormatter shows task payloads in the UI: pretty-printed JSON when
// the payload parses as JSON, the text itself when it is printable, and
// "<N bytes>" otherwise; phone numbers are masked with [mask.Text]. It
// implements asynqmon.PayloadFormatter.
type PayloadFormatter struct{}

// FormatPayload returns the masked, printable form of payload.
func (PayloadFormatter) FormatPayload(taskType string, payload []byte) string {
	return formatBytes(payload)
}

// ResultFormatter shows task results in the UI exactly as
// [PayloadFormatter] shows payloads. It implements
// asynqmon.ResultFormatter.
type ResultFormatter struct{}

// FormatResult returns the masked, printable form of result.
func (ResultFormatter) FormatResult(taskType string, result []byte) string {
	return formatBytes(result)
}

// formatBytes renders b for a person and masks phone numbers in it.
func formatBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if json.Valid(b) {
		// Mask string values after unescaping them first, so that a
		// number spelled with \u escapes is caught too; then the whole
		// text, which also covers numbers written as JSON numbers.
		var out bytes.Buffer
		if err := json.Indent(&out, maskJSON(b, false), "", "  "); err == nil {
			return mask.Text(out.String())
		}
	}
	if !printable(b) {
		return fmt.Sprintf("<%d bytes>", len(b))
	}
	return mask.Text(string(b))
}

// printable reports whether b is UTF-8 text made of printable characters
// and white space.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
