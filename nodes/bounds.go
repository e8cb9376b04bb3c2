package nodes

import (
	"unicode/utf8"
)

// Bounds on what the registry keeps, in bytes as encoding/json writes them
// (it escapes <, > and & as \u003c, six bytes for one): what a node posts
// is measured as it will be saved and served, not as it was sent.
const (
	// MaxTextBytes bounds a message, a reason, an image name or a version.
	MaxTextBytes = 512
	// MaxLogBytes bounds a node's event log; the oldest events go first.
	MaxLogBytes = 16 << 10
	// MaxFileBytes bounds the state file: past it, nodes are saved
	// without their event logs (their states and timelines are kept).
	MaxFileBytes = 32 << 20
)

// jsonLen returns the bytes encoding/json writes, inside a string, for
// the rune r that takes size bytes of the string.
func jsonLen(r rune, size int) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == '\f':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	case r == utf8.RuneError && size == 1: // an invalid byte, written as \ufffd
		return 6
	}
	return size
}

// encodedLen returns the bytes encoding/json writes for s, quotes included.
func encodedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += jsonLen(r, size)
		i += size
	}
	return n
}

// clipText cuts s so that encoding/json writes at most max bytes for it,
// quotes included, marking a cut with "...".
func clipText(s string, max int) string {
	if len(s)*6+2 <= max || encodedLen(s) <= max {
		return s
	}
	n := 2 + 3 // quotes and "..."
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if n += jsonLen(r, size); n > max {
			return s[:i] + "..."
		}
		i += size
	}
	return s
}

// entryLen bounds the bytes encoding/json writes for e: its texts, and
// room for the time, the field names and the punctuation.
func entryLen(e *Entry) int {
	return encodedLen(e.Message) + encodedLen(e.Reason) + len(e.Source) + len(e.State) + 100
}

// trimLog drops n's oldest events until at most MaxEvents are left, taking
// at most MaxLogBytes; the newest is always kept.
func (n *Node) trimLog() {
	size, keep := 0, 0
	for i := len(n.Events) - 1; i >= 0 && keep < MaxEvents; i-- {
		if size += entryLen(&n.Events[i]); size > MaxLogBytes && keep > 0 {
			break
		}
		keep++
	}
	if drop := len(n.Events) - keep; drop > 0 {
		n.Events = append(n.Events[:0], n.Events[drop:]...)
	}
}
