package enqueuecli

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// plainEvery is how often progress is printed when the output is not a
// terminal.
const plainEvery = 5 * time.Second

// progress shows how a pass advances: a bar with rate and ETA on a
// terminal, a plain line every few seconds otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	label    string
	unit     string // "rows" or "bytes"
	total    int64
	count    func() int64
	start    time.Time

	bar  *progressbar.ProgressBar
	stop chan struct{}
	done chan struct{}
}

// startProgress shows the progress of count() towards total until finish.
func startProgress(w io.Writer, terminal bool, label, unit string, total int64, count func() int64) *progress {
	p := &progress{w: w, terminal: terminal, label: label, unit: unit, total: total, count: count,
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	every := plainEvery
	if terminal {
		every = 150 * time.Millisecond
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetRenderBlankState(true),
		}
		if unit == "bytes" {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
		}
		p.bar = progressbar.NewOptions64(total, opts...)
	}
	go p.loop(every)
	return p
}

func (p *progress) loop(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.show()
		}
	}
}

func (p *progress) show() {
	n := p.count()
	if p.bar != nil {
		_ = p.bar.Set64(n)
		return
	}
	el := time.Since(p.start)
	rate := float64(n) / el.Seconds()
	line := fmt.Sprintf("enqueue: %s: %d of %d %s", p.label, n, p.total, p.unit)
	if p.total > 0 {
		line += fmt.Sprintf(" (%d%%)", n*100/p.total)
	}
	line += fmt.Sprintf(", %.0f %s/s", rate, p.unit)
	if rate > 0 && n < p.total {
		line += ", about " + (time.Duration(float64(p.total-n)/rate) * time.Second).Round(time.Second).String() + " left"
	}
	fmt.Fprintln(p.w, line)
}

// finish stops the display; a terminal bar is cleared.
func (p *progress) finish() {
	close(p.stop)
	<-p.done
	if p.bar != nil {
		_ = p.bar.Set64(p.count())
		_ = p.bar.Finish()
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
