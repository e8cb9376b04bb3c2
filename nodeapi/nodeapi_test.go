package nodeapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var goodConfig = `{"name":"n1","mac":"52:54:00:12:34:01","image":"web","version":"v1",` +
	`"torrent":"http://10.0.0.1/images/web/v1/rootfs.torrent","infohash":"` + strings.Repeat("ab", 20) + `",` +
	`"size":1048576,"sha256":"` + strings.Repeat("0f", 32) + `","webseed":"","tracker":"","cmdline":"","cache":""}`

func TestDecodeBootConfig(t *testing.T) {
	tests := []struct {
		name, body, err string
	}{
		{"good", goodConfig, ""},
		{"not JSON", `{"image":`, "boot config: unexpected end of JSON input"},
		{"no version", strings.Replace(goodConfig, `"version":"v1"`, `"version":""`, 1), "image and version are required"},
		{"short infohash", strings.Replace(goodConfig, strings.Repeat("ab", 20), "abcd", 1), "is not 40 hex digits"},
		{"non-hex infohash", strings.Replace(goodConfig, strings.Repeat("ab", 20), strings.Repeat("zz", 20), 1), "is not 40 hex digits"},
		{"non-hex sha256", strings.Replace(goodConfig, strings.Repeat("0f", 32), strings.Repeat("x", 64), 1), "is not 64 hex digits"},
		{"zero size", strings.Replace(goodConfig, `"size":1048576`, `"size":0`, 1), "size 0 is not positive"},
		{"cache_fallback ram", strings.Replace(goodConfig, `"cache":""`, `"cache":"/dev/vda","cache_fallback":"ram"`, 1), ""},
		{"cache_fallback fail", strings.Replace(goodConfig, `"cache":""`, `"cache":"/dev/vda","cache_fallback":"fail"`, 1), ""},
		{"unknown cache_fallback", strings.Replace(goodConfig, `"cache":""`, `"cache":"/dev/vda","cache_fallback":"disk"`, 1), `cache_fallback "disk" is neither "fail" nor "ram"`},
		{"pieces_blake3", strings.Replace(goodConfig, `"cache":""`, `"cache":"","pieces_blake3":"http://10.0.0.1/images/web/v1/rootfs.pieces.blake3","pieces_blake3_sha256":"`+strings.Repeat("1f", 32)+`"`, 1), ""},
		{"pieces_blake3 without its sha256", strings.Replace(goodConfig, `"cache":""`, `"cache":"","pieces_blake3":"http://10.0.0.1/images/web/v1/rootfs.pieces.blake3"`, 1), "pieces_blake3 needs a url and a pieces_blake3_sha256"},
		{"pieces_blake3_sha256 without its url", strings.Replace(goodConfig, `"cache":""`, `"cache":"","pieces_blake3_sha256":"`+strings.Repeat("1f", 32)+`"`, 1), "pieces_blake3 needs a url"},
		{"no torrent", strings.Replace(goodConfig, `"torrent":"http://10.0.0.1/images/web/v1/rootfs.torrent"`, `"torrent":""`, 1), "torrent URL is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeBootConfig([]byte(tt.body))
			if tt.err == "" {
				if err != nil || c.Image != "web" || c.Size != 1<<20 {
					t.Fatalf("DecodeBootConfig = %+v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name, body, err string
	}{
		{"good", `{"state":"fetching","done":5,"total":10}`, ""},
		{"unknown state", `{"state":"pwned"}`, `unknown state "pwned"`},
		{"unknown field", `{"state":"running","extra":1}`, "unknown field"},
		{"negative", `{"state":"fetching","done":-1}`, "negative byte count"},
		{"negative from the appliance", `{"state":"fetching","from_appliance":-1}`, "negative byte count"},
		{"long reason", `{"state":"failed","reason":"` + strings.Repeat("a", 1025) + `"}`, "longer than 1024 bytes"},
		{"too big", `{"state":"failed","message":"` + strings.Repeat("a", MaxEventBytes) + `"}`, "event:"},
		{"empty", ``, "event: EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEvent(strings.NewReader(tt.body))
			if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// FuzzDecodeEvent: any body either fails with an error or gives an event
// that passes the checks and survives a round trip.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{`{"state":"fetching","done":5,"total":10}`, `{"state":"failed","reason":"x"}`, `{}`, `[]`, `{"state":"running","time":"2026-01-02T03:04:05Z"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !ValidState(e.State) || len(e.Reason) > 1024 || len(e.Message) > 1024 || e.Done < 0 || e.Total < 0 {
			t.Fatalf("accepted a bad event: %+v", e)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeEvent(bytes.NewReader(again)); err != nil {
			t.Fatalf("re-encoded event refused: %v: %s", err, again)
		}
	})
}

// FuzzDecodeBootConfig: any body either fails with an error or gives a
// config that passes Validate.
func FuzzDecodeBootConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte(`{"image":"web"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeBootConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil || c.Size <= 0 || len(c.InfoHash) != 40 {
			t.Fatalf("accepted a bad config: %+v (%v)", c, err)
		}
	})
}
