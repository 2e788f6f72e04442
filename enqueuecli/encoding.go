package enqueuecli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Encodings the reader decodes (the values of --encoding, canonical).
const (
	encUTF8    = "utf-8"
	encUTF16LE = "utf-16le"
	encUTF16BE = "utf-16be"
	encGBK     = "gbk"
	encGB18030 = "gb18030"
)

// parseEncoding returns the canonical name of an --encoding value.
func parseEncoding(v string) (string, error) {
	switch strings.ToLower(strings.ReplaceAll(strings.TrimSpace(v), "_", "-")) {
	case "utf-8", "utf8":
		return encUTF8, nil
	case "utf-16", "utf16", "utf-16le", "utf16le", "unicode":
		return encUTF16LE, nil
	case "utf-16be", "utf16be":
		return encUTF16BE, nil
	case "gbk", "gb2312", "cp936", "936":
		return encGBK, nil
	case "gb18030":
		return encGB18030, nil
	}
	return "", usagef("--encoding %q: want utf-8, gbk, gb18030 or utf-16 (utf-16le, utf-16be)", v)
}

// sniffEncoding guesses the encoding of a file from its first bytes: a
// byte-order mark, or the zero bytes of UTF-16 text without one. Anything
// else is read as UTF-8, and every row is checked. It also says how the
// guess was made, for a note to the user ("" for plain UTF-8).
func sniffEncoding(head []byte) (enc, note string) {
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		return encUTF16LE, "UTF-16 (little-endian, with a byte-order mark: Excel's \"Unicode text\")"
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return encUTF16BE, "UTF-16 (big-endian, with a byte-order mark)"
	}
	if len(head) >= 4 {
		// Most UTF-16 text without a BOM is ASCII: one byte of most pairs
		// is zero, and that of almost no pair is the other one. A few
		// characters such as 一 (U+4E00) have a zero byte of their own.
		var zeroEven, zeroOdd int
		pairs := len(head) / 2
		for i := 0; i+1 < len(head); i += 2 {
			if head[i] == 0 {
				zeroEven++
			}
			if head[i+1] == 0 {
				zeroOdd++
			}
		}
		switch {
		case zeroOdd*100 >= pairs*60 && zeroEven*100 <= pairs*5:
			return encUTF16LE, "UTF-16 (little-endian, no byte-order mark)"
		case zeroEven*100 >= pairs*60 && zeroOdd*100 <= pairs*5:
			return encUTF16BE, "UTF-16 (big-endian, no byte-order mark)"
		}
	}
	return encUTF8, ""
}

// decodeReader returns r decoded from enc to UTF-8, without a byte-order
// mark, and with line ends that are a lone CR (old Mac Excel) made LF.
func decodeReader(r io.Reader, enc string) io.Reader {
	return transform.NewReader(decodeText(r, enc), crToLF{})
}

// decodeText returns r decoded from enc to UTF-8, without a byte-order
// mark. Bytes that are not UTF-8 in a UTF-8 file stay as they are, for the
// reader to find; a decoder writes U+FFFD for bytes it cannot decode.
func decodeText(r io.Reader, enc string) io.Reader {
	switch enc {
	case encUTF16LE:
		r = transform.NewReader(r, xunicode.UTF16(xunicode.LittleEndian, xunicode.UseBOM).NewDecoder())
	case encUTF16BE:
		r = transform.NewReader(r, xunicode.UTF16(xunicode.BigEndian, xunicode.UseBOM).NewDecoder())
	case encGBK, encGB18030:
		// GB18030 covers GBK and GB2312, and a file called GBK may hold
		// its four-byte characters.
		r = transform.NewReader(r, simplifiedchinese.GB18030.NewDecoder())
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\ufeff")) {
		_, _ = br.Discard(3)
	}
	return br
}

// crToLF turns every CR that is not followed by LF into LF, so that files
// whose lines end in CR alone read line by line. CRLF stays.
type crToLF struct{ transform.NopResetter }

func (crToLF) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for nSrc < len(src) {
		if nDst >= len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		c := src[nSrc]
		if c == '\r' {
			if nSrc+1 == len(src) && !atEOF {
				return nDst, nSrc, transform.ErrShortSrc // is an LF next?
			}
			if nSrc+1 == len(src) || src[nSrc+1] != '\n' {
				c = '\n'
			}
		}
		dst[nDst] = c
		nDst++
		nSrc++
	}
	return nDst, nSrc, nil
}

// crOnly reports whether head (UTF-8 or a single-byte-compatible
// encoding) ends its lines with CR alone.
func crOnly(head []byte) bool {
	return bytes.IndexByte(head, '\r') >= 0 && bytes.IndexByte(head, '\n') < 0
}

// encodingError is a file that is not in the encoding it is read as.
type encodingError struct {
	file  string
	line  int
	guess string // what it looks like, as a clause
}

func (e *encodingError) Error() string {
	return fmt.Sprintf("%s:%d: not UTF-8: %s", e.file, e.line, e.guess)
}

// notUTF8 describes text that is not valid UTF-8: what encoding it looks
// like, and what to do.
func notUTF8(file string, line int, b []byte) *encodingError {
	guess := "it is in another encoding; save the file as UTF-8 (Excel: \"CSV UTF-8\"), or pass --encoding gbk, gb18030 or utf-16"
	if d, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b); err == nil && utf8.Valid(d) && !bytes.ContainsRune(d, utf8.RuneError) &&
		bytes.ContainsFunc(d, func(r rune) bool { return unicode.Is(unicode.Han, r) }) {
		guess = "it looks like GBK or GB18030 (Chinese text as Excel and WPS save it on Windows); save the file as \"CSV UTF-8\", or pass --encoding gb18030 (it covers GBK and GB2312)"
	} else if bytes.Count(b, []byte{0}) > len(b)/4 {
		guess = noBOMUTF16
	}
	return &encodingError{file: file, line: line, guess: guess}
}

// noBOMUTF16 is what to do with UTF-16 text read as UTF-8.
const noBOMUTF16 = "it looks like UTF-16 without a byte-order mark: pass --encoding utf-16 (or utf-16be)"

// alreadyUTF8 returns an error if head, the start of a file to be read as
// GBK or GB18030 (enc), is UTF-8 instead: it starts with a UTF-8 byte-order
// mark, or is valid UTF-8 with non-ASCII text. Decoding it would garble
// every Chinese character.
func alreadyUTF8(file string, head []byte, enc string) error {
	if enc != encGBK && enc != encGB18030 {
		return nil
	}
	why := ""
	if bytes.HasPrefix(head, []byte("\ufeff")) {
		why = "it starts with a UTF-8 byte-order mark"
	} else {
		b := head
		if len(b) == 64<<10 { // the head may end inside a character
			for k := 0; k < utf8.UTFMax-1 && len(b) > 0 && !utf8.RuneStart(b[len(b)-1]); k++ {
				b = b[:len(b)-1]
			}
			if len(b) > 0 && b[len(b)-1] >= utf8.RuneSelf {
				b = b[:len(b)-1]
			}
		}
		if utf8.Valid(b) && bytes.ContainsFunc(b, func(r rune) bool { return r >= utf8.RuneSelf }) {
			why = "its text is valid UTF-8"
		}
	}
	if why == "" {
		return nil
	}
	return usagef("%s is already UTF-8 (%s), and reading it as %s would garble its text: drop --encoding %s", file, why, strings.ToUpper(enc), enc)
}
