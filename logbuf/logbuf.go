// Package logbuf batches log lines into fewer writes. A service that logs
// a line per packet (the proxy DHCP reply, the HTTP request) would
// otherwise make a write system call per packet; through a Writer it makes
// one per batch, at most Delay after the first line of the batch. Lines at
// warning level or above, through Handler, are written at once, with
// everything before them.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Delay is how late the appliance writes an info line at most.
const Delay = 100 * time.Millisecond

// maxBuffered is how many bytes a Writer holds before it writes them
// without waiting for its delay.
const maxBuffered = 64 << 10

// Writer buffers what is written to it and writes it to the underlying
// writer within a delay. It is safe for concurrent use. Close writes what
// is left; lines written in the last delay before the process is killed
// are lost.
type Writer struct {
	w     io.Writer
	delay time.Duration

	mu     sync.Mutex
	buf    []byte
	armed  bool  // a flush is scheduled
	err    error // the last failed write, returned by the next call
	closed bool
}

// New returns a Writer over w that writes within delay of each line.
func New(w io.Writer, delay time.Duration) *Writer {
	return &Writer{w: w, delay: delay}
}

// Write appends p, a whole line (slog handlers write a record per call).
// It returns the error of an earlier delayed write, if one failed.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		n, err := b.w.Write(p)
		return n, err
	}
	if len(b.buf)+len(p) > maxBuffered {
		b.flushLocked()
	}
	b.buf = append(b.buf, p...)
	if !b.armed {
		b.armed = true
		time.AfterFunc(b.delay, b.timedFlush)
	}
	err := b.err
	b.err = nil
	return len(p), err
}

func (b *Writer) timedFlush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = false
	b.flushLocked()
}

func (b *Writer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil {
		b.err = err
	}
	// Keep the buffer unless a burst grew it past the limit.
	if cap(b.buf) > 2*maxBuffered {
		b.buf = nil
	} else {
		b.buf = b.buf[:0]
	}
}

// Flush writes what is buffered now.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	err := b.err
	b.err = nil
	return err
}

// Close writes what is buffered; later writes go straight through.
func (b *Writer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.closed = true
	err := b.err
	b.err = nil
	return err
}

// Handler returns h, writing to w, with every record at level or above
// flushed as soon as it is handled: a warning or an error reaches the log
// at once, and a crash right after it loses nothing before it.
func Handler(h slog.Handler, w *Writer, level slog.Level) slog.Handler {
	return &handler{h: h, w: w, level: level}
}

type handler struct {
	h     slog.Handler
	w     *Writer
	level slog.Level
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.h.Handle(ctx, r)
	if r.Level >= h.level {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{h: h.h.WithAttrs(as), w: h.w, level: h.level}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), w: h.w, level: h.level}
}
