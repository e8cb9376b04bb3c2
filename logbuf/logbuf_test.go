package logbuf

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records each write the Writer makes, and signals it.
type sink struct {
	mu     sync.Mutex
	writes []string
	fail   error
	wrote  chan struct{}
}

func newSink() *sink { return &sink{wrote: make(chan struct{}, 1000)} }

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.writes = append(s.writes, string(p))
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *sink) all() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.writes, ""), len(s.writes)
}

func TestLinesWaitForFlush(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour)
	for i := range 3 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if got, n := s.all(); n != 0 {
		t.Fatalf("before the delay: %d writes (%q), want none", n, got)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got, n := s.all()
	if want := "line 0\nline 1\nline 2\n"; got != want || n != 1 {
		t.Errorf("after Flush: %d writes of %q, want one of %q", n, got, want)
	}
}

func TestDelayedWrite(t *testing.T) {
	s := newSink()
	w := New(s, 10*time.Millisecond)
	start := time.Now()
	fmt.Fprintln(w, "one")
	fmt.Fprintln(w, "two")
	select {
	case <-s.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing written 10 s after the lines")
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Errorf("written after %v, before the 10 ms delay", d)
	}
	if got, n := s.all(); got != "one\ntwo\n" || n != 1 {
		t.Errorf("%d writes of %q, want one of both lines", n, got)
	}
	// A line after the flush arms the delay again.
	fmt.Fprintln(w, "three")
	select {
	case <-s.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the second batch was not written")
	}
}

func TestFullBufferWritesAtOnce(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour)
	line := bytes.Repeat([]byte("x"), 1000)
	line[len(line)-1] = '\n'
	for range maxBuffered/len(line) + 1 {
		w.Write(line)
	}
	got, n := s.all()
	if n != 1 || len(got) != maxBuffered/len(line)*len(line) {
		t.Errorf("%d writes of %d bytes, want one of the %d whole lines that fit", n, len(got), maxBuffered/len(line))
	}
}

func TestWarningsFlush(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour)
	log := slog.New(Handler(slog.NewTextHandler(w, nil), w, slog.LevelWarn)).With("port", 67)
	log.Info("proxy DHCP reply", "mac", "52:54:00:00:00:01")
	if _, n := s.all(); n != 0 {
		t.Fatalf("an info line was written at once")
	}
	log.WithGroup("g").Warn("proxy DHCP send failed", "err", "no route")
	got, n := s.all()
	if n != 1 || !strings.Contains(got, "proxy DHCP reply") || !strings.Contains(got, "g.err=\"no route\"") || !strings.Contains(got, "port=67") {
		t.Errorf("after a warning: %d writes of %q, want one with both lines", n, got)
	}
}

func TestWriteErrorReported(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour)
	s.fail = errors.New("disk full")
	fmt.Fprintln(w, "lost")
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Errorf("Flush over a failing writer: %v, want disk full", err)
	}
	if err := w.Flush(); err != nil {
		t.Errorf("the error was reported twice: %v", err)
	}
}

func TestCloseWritesTheRestAndPassesThrough(t *testing.T) {
	s := newSink()
	w := New(s, time.Hour)
	fmt.Fprintln(w, "last buffered")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "after close")
	if got, n := s.all(); got != "last buffered\nafter close\n" || n != 2 {
		t.Errorf("%d writes of %q", n, got)
	}
}

// Concurrent writers: every line arrives whole and once.
func TestConcurrentLines(t *testing.T) {
	s := newSink()
	w := New(s, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				fmt.Fprintf(w, "writer %d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := s.all()
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if seen[l] {
			t.Fatalf("line %q twice", l)
		}
		seen[l] = true
	}
	if len(seen) != 8*2000 {
		t.Errorf("%d distinct lines, want %d", len(seen), 8*2000)
	}
}
