// Package boottoken issues and checks per-boot tokens: each fetch of a
// node's iPXE script carries a fresh token on the kernel command line it
// sets (moobi.boot=TOKEN), and the node presents it (header Header) with its
// boot config and event requests. A token is bound to the address it is
// first used from, so a host that fetched the script itself gets a token of
// its own and cannot act with the node's.
//
// Tokens are self-checking: each carries its issue time and an HMAC-SHA256
// tag over the MAC it was issued for, keyed by the appliance's secret. A
// restarted appliance with the same key still accepts the tokens of boots
// under way; only the bindings (held in memory) start afresh, and are made
// again at each token's next use.
package boottoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header carries a node's boot token on its requests to the appliance.
const Header = "Moobi-Boot"

// CmdlineParam is the kernel command line parameter of the token.
const CmdlineParam = "moobi.boot"

// Bounds.
const (
	// Lifetime is how long a token is accepted after it was issued: a
	// boot posts its last event (running) well within it.
	Lifetime = 3 * time.Hour
	// MaxPerMAC bounds the bindings kept per MAC; past it the one used
	// longest ago is forgotten (its token binds again at its next use).
	MaxPerMAC = 8
	// MaxMACs bounds the MACs with bindings (unknown_hosts may boot any
	// MAC); past it the MAC used longest ago is forgotten.
	MaxMACs = 10000
)

// Errors of Check, wrapped with what was wrong.
var (
	ErrMissing      = errors.New("no boot token")
	ErrInvalid      = errors.New("boot token not issued by this appliance for this MAC")
	ErrExpired      = errors.New("boot token expired")
	ErrOtherAddress = errors.New("boot token in use from another address")
	ErrSuperseded   = errors.New("boot token of an earlier boot")
)

// Tokens issues and checks tokens. It is safe for concurrent use.
type Tokens struct {
	key []byte
	now func() time.Time

	mu    sync.Mutex
	bound map[string][]*binding // by MAC
}

// binding is a token in use: the address it was first used from.
type binding struct {
	token  string
	addr   string
	issued time.Time
	used   time.Time
}

// New returns Tokens keyed by key; a nil key gets a random one (tokens then
// die with the process).
func New(key []byte) *Tokens {
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	return &Tokens{key: key, now: time.Now, bound: map[string][]*binding{}}
}

// Issue returns a fresh token for mac: "ISSUED.RANDOM.TAG" in hex, issued
// in Unix milliseconds.
func (t *Tokens) Issue(mac net.HardwareAddr) string {
	r := make([]byte, 12)
	rand.Read(r)
	body := strconv.FormatInt(t.now().UnixMilli(), 16) + "." + hex.EncodeToString(r)
	return body + "." + t.tag(mac, body)
}

func (t *Tokens) tag(mac net.HardwareAddr, body string) string {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte("moobi boot token\x00" + mac.String() + "\x00" + body))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Parse checks that token was issued for mac and is not expired, and
// returns when it was issued.
func (t *Tokens) Parse(mac net.HardwareAddr, token string) (time.Time, error) {
	if token == "" {
		return time.Time{}, ErrMissing
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 || len(token) > 128 || !hmac.Equal([]byte(token[i+1:]), []byte(t.tag(mac, token[:i]))) {
		return time.Time{}, ErrInvalid
	}
	secs, _, _ := strings.Cut(token, ".")
	n, err := strconv.ParseInt(secs, 16, 64)
	if err != nil {
		return time.Time{}, ErrInvalid
	}
	issued := time.UnixMilli(n)
	if now := t.now(); now.Sub(issued) > Lifetime || issued.Sub(now) > time.Minute {
		return time.Time{}, fmt.Errorf("%w: issued %s", ErrExpired, issued.UTC().Format(time.RFC3339))
	}
	return issued, nil
}

// Check reports whether a request from addr with token may act for the
// node with mac: the token must be valid (see Parse), used from the
// address it was first used from, and not older than a token of the same
// MAC used since from that address (the node booted again).
func (t *Tokens) Check(mac net.HardwareAddr, token, addr string) error {
	issued, err := t.Parse(mac, token)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	key := mac.String()
	list := t.bound[key]
	var mine *binding
	for _, b := range list {
		if b.token == token {
			mine = b
		} else if b.addr == addr && b.issued.After(issued) {
			return fmt.Errorf("%w: %s booted again since", ErrSuperseded, addr)
		}
	}
	if mine != nil {
		if mine.addr != addr {
			return fmt.Errorf("%w (%s)", ErrOtherAddress, mine.addr)
		}
		mine.used = now
		return nil
	}
	// A new token from this address: the bindings of older tokens from
	// it go (that boot is over), so do expired ones.
	keep := list[:0]
	for _, b := range list {
		if b.addr != addr && now.Sub(b.issued) <= Lifetime {
			keep = append(keep, b)
		}
	}
	if len(keep) >= MaxPerMAC {
		oldest := 0
		for i, b := range keep {
			if b.used.Before(keep[oldest].used) {
				oldest = i
			}
		}
		keep = append(keep[:oldest], keep[oldest+1:]...)
	}
	if _, ok := t.bound[key]; !ok && len(t.bound) >= MaxMACs {
		t.forgetOldestMAC()
	}
	t.bound[key] = append(keep, &binding{token: token, addr: addr, issued: issued, used: now})
	return nil
}

// forgetOldestMAC drops the bindings of the MAC used longest ago. t.mu is
// held.
func (t *Tokens) forgetOldestMAC() {
	var oldest string
	var at time.Time
	for mac, list := range t.bound {
		var last time.Time
		for _, b := range list {
			if b.used.After(last) {
				last = b.used
			}
		}
		if oldest == "" || last.Before(at) {
			oldest, at = mac, last
		}
	}
	delete(t.bound, oldest)
}

// FromCmdline returns the token on a kernel command line (or an iPXE
// script's kernel line), or "".
func FromCmdline(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, CmdlineParam+"="); ok {
			return v
		}
	}
	return ""
}
