package image

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// progress reports a pull: on a terminal one live line per layer (layer
// i/n, bytes, rate), otherwise one line when the pull ends, and nothing
// when every layer was stored already.
type progress struct {
	w        io.Writer
	terminal bool
	ref      string
	n, i     int
	fetched  int
	start    time.Time
	total    int64
	cur      atomic.Int64
	stop     chan struct{}
	stopped  chan struct{}
}

func (s *Store) newProgress(ref string, layers int) *progress {
	return &progress{w: s.Progress, terminal: s.Terminal, ref: ref, n: layers, start: time.Now()}
}

// cached counts a layer the store held.
func (p *progress) cached() { p.i++ }

// reader counts what r delivers and, on a terminal, redraws the layer's
// line until layerDone.
func (p *progress) reader(r io.Reader) io.Reader {
	p.i++
	p.cur.Store(0)
	if p.w != nil && p.terminal {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.draw()
	}
	return countingReader{r, &p.cur}
}

func (p *progress) draw() {
	defer close(p.stopped)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	begun := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			n := p.cur.Load()
			fmt.Fprintf(p.w, "\r\033[Knsbox: %s: layer %d/%d %s (%s/s)", p.ref, p.i, p.n, bytesText(n), bytesText(int64(float64(n)/time.Since(begun).Seconds())))
		}
	}
}

// layerDone ends a layer's line.
func (p *progress) layerDone(st unpackStats) {
	p.fetched++
	p.total += p.cur.Load()
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.stop = nil
		fmt.Fprintf(p.w, "\r\033[Knsbox: %s: layer %d/%d %s unpacked\n", p.ref, p.i, p.n, bytesText(p.cur.Load()))
	}
	if st.Devices > 0 && p.w != nil {
		fmt.Fprintf(p.w, "nsbox: %s: layer %d/%d: %d device nodes skipped (a sandbox has its own /dev)\n", p.ref, p.i, p.n, st.Devices)
	}
}

// done prints the pull's one line, if a layer was fetched.
func (p *progress) done() {
	if p.w == nil || p.fetched == 0 {
		return
	}
	d := time.Since(p.start)
	fmt.Fprintf(p.w, "nsbox: pulled %s: %d of %d layers, %s in %.1fs (%s/s)\n", p.ref, p.fetched, p.n,
		bytesText(p.total), d.Seconds(), bytesText(int64(float64(p.total)/d.Seconds())))
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// bytesText renders n as "12.3 MB".
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
