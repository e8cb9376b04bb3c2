package lab

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

const pollInterval = 100 * time.Millisecond

// waitFile polls the file at path until it contains substr. It fails when
// ctx ends or, after a last look, when p (if non-nil) has exited. The error
// includes the tail of the file.
func waitFile(ctx context.Context, path, substr, what string, p *proc) error {
	match := func(s string) bool { return strings.Contains(s, substr) }
	return waitMatch(ctx, path, match, fmt.Sprintf("%q", substr), what, p)
}

// waitMatch is waitFile with a predicate on the whole file content.
func waitMatch(ctx context.Context, path string, match func(string) bool, desc, what string, p *proc) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		exited := p != nil && p.exited() // checked before reading: no lost output
		b, _ := os.ReadFile(path)
		if match(string(b)) {
			return nil
		}
		if exited {
			return fmt.Errorf("%s: process exited (%v) before %s appeared; tail:\n%s", what, p.err, desc, Tail(string(b), 40))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not seen: %w; tail:\n%s", what, desc, ctx.Err(), Tail(string(b), 40))
		case <-t.C:
		}
	}
}

// tail returns the last n lines of s.
func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
