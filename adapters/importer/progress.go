package importer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows how a phase advances: on a terminal a bar redrawn in
// place, with the rate and the time left; elsewhere (a log file, CI) a
// plain line every interval. done and total are in the phase's units
// (bytes while validating, events while sending); lines counts the lines,
// which the rate is given in.
type progress struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	phase    string
	total    int64
	start    time.Time
	done     atomic.Int64
	lines    atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	now      func() time.Time
}

// startProgress starts the display of a phase; nil Progress shows none.
func startProgress(cfg *Config, phase string, total int64) *progress {
	p := &progress{w: cfg.Progress, tty: cfg.Terminal, interval: cfg.ProgressInterval, phase: phase, total: total,
		start: time.Now(), stop: make(chan struct{}), now: time.Now}
	if p.w == nil {
		return p
	}
	if p.tty {
		p.interval = 200 * time.Millisecond
	}
	p.wg.Go(func() {
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw(false)
			}
		}
	})
	return p
}

func (p *progress) set(done, lines int64) {
	p.done.Store(done)
	p.lines.Store(lines)
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p.w == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.draw(true)
}

func (p *progress) draw(final bool) {
	fmt.Fprint(p.w, p.render(final))
}

// render formats the current state.
func (p *progress) render(final bool) string {
	elapsed := p.now().Sub(p.start)
	done, lines := p.done.Load(), p.lines.Load()
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(lines) / s
	}
	frac := -1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	eta := "--"
	switch {
	case final:
		eta = "done in " + elapsed.Round(100*time.Millisecond).String()
	case frac > 0:
		eta = "ETA " + (time.Duration(float64(elapsed) * (1 - frac) / frac)).Round(time.Second).String()
	}
	if !p.tty {
		pct := ""
		if frac >= 0 {
			pct = fmt.Sprintf(" (%.0f%%)", 100*frac)
		}
		return fmt.Sprintf("%s: %d lines%s, %.0f lines/s, %s\n", p.phase, lines, pct, rate, eta)
	}
	const width = 30
	bar := strings.Repeat("░", width)
	pct := "  ?%"
	if frac >= 0 {
		full := int(frac * width)
		bar = strings.Repeat("█", full) + strings.Repeat("░", width-full)
		pct = fmt.Sprintf("%3.0f%%", 100*frac)
	}
	end := ""
	if final {
		end = "\n"
	}
	// \r returns to the line's start; \x1b[K clears what a longer earlier
	// drawing left.
	return fmt.Sprintf("\r%-10s %s %s %d lines  %.0f/s  %s\x1b[K%s", p.phase, bar, pct, lines, rate, eta, end)
}
