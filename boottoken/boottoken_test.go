package boottoken

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

var (
	mac1, _ = net.ParseMAC("52:54:00:12:34:01")
	mac2, _ = net.ParseMAC("52:54:00:12:34:02")
)

// TestCheck: a token is accepted for the MAC it was issued for, from the
// address it was first used from; another host's own token does not lock
// the node out; a token of an earlier boot from the same address, a forged
// or expired one, and one used from a second address are refused.
func TestCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok := New([]byte("key"))
	tok.now = func() time.Time { return now }
	node := tok.Issue(mac1)
	attacker := tok.Issue(mac1)
	now = now.Add(time.Second)
	nextBoot := tok.Issue(mac1)
	tests := []struct {
		name       string
		mac        net.HardwareAddr
		token      string
		addr       string
		after      time.Duration // the clock moves on by this first
		want       error
		wantSubstr string
	}{
		{name: "first use binds", mac: mac1, token: node, addr: "10.0.0.5"},
		{name: "again", mac: mac1, token: node, addr: "10.0.0.5"},
		{name: "another host's own token", mac: mac1, token: attacker, addr: "10.0.0.66"},
		{name: "the node still", mac: mac1, token: node, addr: "10.0.0.5"},
		{name: "the node's token from elsewhere", mac: mac1, token: node, addr: "10.0.0.66", want: ErrOtherAddress, wantSubstr: "(10.0.0.5)"},
		{name: "no token", mac: mac1, token: "", addr: "10.0.0.5", want: ErrMissing},
		{name: "another MAC's", mac: mac2, token: node, addr: "10.0.0.5", want: ErrInvalid},
		{name: "tag changed", mac: mac1, token: node[:len(node)-1] + "0", addr: "10.0.0.5", want: ErrInvalid},
		{name: "issue time changed", mac: mac1, token: "1" + node, addr: "10.0.0.5", want: ErrInvalid},
		{name: "garbage", mac: mac1, token: "....", addr: "10.0.0.5", want: ErrInvalid},
		{name: "next boot from the node's address", mac: mac1, token: nextBoot, addr: "10.0.0.5"},
		{name: "the earlier boot's token", mac: mac1, token: node, addr: "10.0.0.5", want: ErrSuperseded},
		{name: "expired", mac: mac1, token: nextBoot, addr: "10.0.0.5", after: Lifetime + time.Minute, want: ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(tc.after)
			err := tok.Check(tc.mac, tc.token, tc.addr)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantSubstr) {
				t.Errorf("error %q lacks %q", err, tc.wantSubstr)
			}
		})
	}
}

// TestRestart: a token issued before a restart is accepted by Tokens with
// the same key, and not by Tokens with another.
func TestRestart(t *testing.T) {
	token := New([]byte("key")).Issue(mac1)
	if err := New([]byte("key")).Check(mac1, token, "10.0.0.5"); err != nil {
		t.Fatalf("same key: %v", err)
	}
	if err := New([]byte("other")).Check(mac1, token, "10.0.0.5"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other key: %v", err)
	}
}

// TestBounds: many hosts using their own tokens neither grow the bindings
// of a MAC past MaxPerMAC nor evict the binding the node keeps using.
func TestBounds(t *testing.T) {
	tok := New(nil)
	node := tok.Issue(mac1)
	if err := tok.Check(mac1, node, "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		addr := "10.0.1." + string(rune('0'+i%10)) + string(rune('0'+i/10))
		if err := tok.Check(mac1, tok.Issue(mac1), addr); err != nil {
			t.Fatal(err)
		}
		if err := tok.Check(mac1, node, "10.0.0.5"); err != nil {
			t.Fatalf("after %d other hosts: %v", i+1, err)
		}
	}
	if n := len(tok.bound[mac1.String()]); n > MaxPerMAC {
		t.Fatalf("%d bindings, want at most %d", n, MaxPerMAC)
	}
	if err := tok.Check(mac1, node, "10.0.0.66"); !errors.Is(err, ErrOtherAddress) {
		t.Fatalf("the node's token from another address: %v", err)
	}
}

func TestFromCmdline(t *testing.T) {
	for in, want := range map[string]string{
		"console=ttyS0 moobi.boot=6a.ab.cd moobi.mac=x": "6a.ab.cd",
		"moobi.boot= x":         "",
		"console=ttyS0":         "",
		"moobi.bootx=1 quiet":   "",
		"kernel u moobi.boot=1": "1",
	} {
		if got := FromCmdline(in); got != want {
			t.Errorf("FromCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse: any string is either refused or a token Issue made.
func FuzzParse(f *testing.F) {
	tok := New([]byte("key"))
	f.Add(tok.Issue(mac1))
	f.Add("")
	f.Add("1.2.3")
	f.Add("ffffffffffffffff.00.00")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := tok.Parse(mac1, s); err == nil && len(s) > 128 {
			t.Fatalf("accepted %d bytes", len(s))
		}
	})
}
