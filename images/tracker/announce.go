package tracker

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/anacrolix/torrent/bencode"
)

// Path is where the appliance mounts the tracker on its HTTP port.
const Path = "/announce"

type event int

const (
	eventNone event = iota
	eventStarted
	eventStopped
	eventCompleted
)

func (e event) String() string {
	return [...]string{"", "started", "stopped", "completed"}[e]
}

// announce is a parsed announce request.
type announce struct {
	infoHash   [20]byte
	peerID     [20]byte
	port       uint16
	uploaded   int64
	downloaded int64
	left       int64
	event      event
	numWant    int // -1: not given
	compact    bool
	noPeerID   bool
}

// errUnknown is the failure for infohashes outside the catalog.
var errUnknown = errors.New("unknown torrent: this tracker serves only the appliance's images")

// ServeHTTP answers a BEP 3 announce. Failures are bencoded dictionaries
// with a "failure reason", sent with status 200 as trackers do so that every
// client reads them.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeBencode(w, http.StatusMethodNotAllowed, failure{"announce must be a GET request"})
		return
	}
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		t.log.Warn("tracker: unusable remote address", "client", r.RemoteAddr, "err", err)
		writeBencode(w, http.StatusOK, failure{"tracker cannot determine your address"})
		return
	}
	ip := remote.Addr().Unmap()
	client := ip.String()
	if t.o.Allowed != nil && !t.o.Allowed(ip) {
		t.log.Info("tracker: announce refused: address not allowed", "client", client)
		writeBencode(w, http.StatusOK, failure{fmt.Sprintf("address %s is not allowed to use this tracker", client)})
		return
	}
	a, err := parseAnnounce(r.URL.RawQuery)
	if err != nil {
		t.log.Debug("tracker: malformed announce", "client", client, "err", err)
		writeBencode(w, http.StatusOK, failure{err.Error()})
		return
	}
	ih := hex.EncodeToString(a.infoHash[:])
	if t.o.Known == nil || !t.o.Known(a.infoHash) {
		t.log.Info("tracker: announce refused: unknown torrent", "infohash", ih, "client", client)
		writeBencode(w, http.StatusOK, failure{errUnknown.Error()})
		return
	}
	addr := netip.AddrPortFrom(ip, a.port)
	origin := t.o.Origins != nil && t.o.Origins(addr)
	booted := !origin && t.o.Booted != nil && t.o.Booted(ip)
	res := t.announce(a, addr, origin, booted)

	level := debugUnless(a.event == eventCompleted)
	t.log.Log(r.Context(), level, "tracker: announce", "infohash", ih, "client", addr.String(),
		"event", a.event.String(), "left", a.left, "origin", origin, "peers", len(res.peers))
	writeBencode(w, http.StatusOK, t.response(a, res))
}

// response is the bencoded answer to a successful announce.
type response struct {
	Interval    int64  `bencode:"interval"`
	MinInterval int64  `bencode:"min interval"`
	Complete    int    `bencode:"complete"`
	Incomplete  int    `bencode:"incomplete"`
	Peers       any    `bencode:"peers"` // compact string or []peerDict
	Peers6      string `bencode:"peers6,omitempty"`
}

type peerDict struct {
	ID   string `bencode:"peer id,omitempty"`
	IP   string `bencode:"ip"`
	Port int    `bencode:"port"`
}

type failure struct {
	Reason string `bencode:"failure reason"`
}

func (t *Tracker) response(a *announce, res announceResult) response {
	out := response{
		Interval:    int64(t.o.Interval.Seconds()),
		MinInterval: int64(t.o.MinInterval.Seconds()),
		Complete:    res.complete,
		Incomplete:  res.incomplete,
	}
	if !a.compact {
		list := make([]peerDict, 0, len(res.peers))
		for _, p := range res.peers {
			d := peerDict{IP: p.addr.Addr().String(), Port: int(p.addr.Port())}
			if !a.noPeerID {
				d.ID = string(p.id[:])
			}
			list = append(list, d)
		}
		out.Peers = list
		return out
	}
	var v4, v6 []byte
	for _, p := range res.peers {
		ip := p.addr.Addr()
		if ip.Is4() {
			v4 = append(v4, ip.AsSlice()...)
			v4 = append(v4, byte(p.addr.Port()>>8), byte(p.addr.Port()))
		} else {
			b := ip.As16()
			v6 = append(v6, b[:]...)
			v6 = append(v6, byte(p.addr.Port()>>8), byte(p.addr.Port()))
		}
	}
	out.Peers = string(v4)
	out.Peers6 = string(v6)
	return out
}

func writeBencode(w http.ResponseWriter, status int, v any) {
	body, err := bencode.Marshal(v)
	if err != nil { // only if a type above were unencodable
		body = []byte("d14:failure reason14:internal errore")
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=binary")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

// parseAnnounce parses an announce query string. Parameters are
// form-decoded ("+" is a space, as Go and opentracker read it), the first
// of repeated parameters counts, and parameters the tracker does not use,
// including the spoofable "ip", are ignored whatever they hold.
func parseAnnounce(rawQuery string) (*announce, error) {
	q := make(map[string]string)
	for pair := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if key, err := url.QueryUnescape(k); err == nil {
			if _, dup := q[key]; !dup {
				q[key] = v
			}
		}
	}
	get := func(key string) (string, bool, error) {
		raw, ok := q[key]
		if !ok {
			return "", false, nil
		}
		v, err := url.QueryUnescape(raw)
		if err != nil {
			return "", true, fmt.Errorf("%s is not properly URL-escaped: %q", key, clip(raw))
		}
		return v, true, nil
	}
	a := &announce{numWant: -1, compact: true}
	for _, f := range []struct {
		key string
		dst *[20]byte
	}{{"info_hash", &a.infoHash}, {"peer_id", &a.peerID}} {
		v, ok, err := get(f.key)
		switch {
		case err != nil:
			return nil, err
		case !ok:
			return nil, fmt.Errorf("missing %s", f.key)
		case len(v) != 20:
			return nil, fmt.Errorf("%s must be 20 bytes, got %d", f.key, len(v))
		}
		copy(f.dst[:], v)
	}

	v, ok, err := get("port")
	if err != nil {
		return nil, err
	} else if !ok {
		return nil, errors.New("missing port")
	}
	port, perr := strconv.ParseUint(v, 10, 16)
	if perr != nil || port == 0 {
		return nil, fmt.Errorf("port must be a number from 1 to 65535, got %q", clip(v))
	}
	a.port = uint16(port)

	for _, f := range []struct {
		key      string
		dst      *int64
		required bool
	}{{"uploaded", &a.uploaded, false}, {"downloaded", &a.downloaded, false}, {"left", &a.left, true}} {
		v, ok, err := get(f.key)
		if err != nil {
			return nil, err
		} else if !ok {
			if f.required {
				return nil, fmt.Errorf("missing %s", f.key)
			}
			continue
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			return nil, fmt.Errorf("%s must be a non-negative integer, got %q", f.key, clip(v))
		}
		*f.dst = n
	}

	if v, _, err = get("event"); err != nil {
		return nil, err
	}
	switch v {
	case "", "empty", "paused": // "paused": BEP 21 partial seeds; a regular announce here
	case "started":
		a.event = eventStarted
	case "stopped":
		a.event = eventStopped
	case "completed":
		a.event = eventCompleted
	default:
		return nil, fmt.Errorf("event must be started, stopped, completed or empty, got %q", clip(v))
	}

	if v, ok, err = get("numwant"); err != nil {
		return nil, err
	} else if ok {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			return nil, fmt.Errorf("numwant must be an integer, got %q", clip(v))
		}
		a.numWant = int(max(min(n, 1<<30), -1)) // negative: the default
	}
	if a.compact, err = flag(get, "compact", true); err != nil {
		return nil, err
	}
	if a.noPeerID, err = flag(get, "no_peer_id", false); err != nil {
		return nil, err
	}
	return a, nil
}

// flag parses an optional 0/1 parameter.
func flag(get func(string) (string, bool, error), key string, def bool) (bool, error) {
	v, ok, err := get(key)
	switch {
	case err != nil:
		return false, err
	case !ok:
		return def, nil
	case v == "0" || v == "1":
		return v == "1", nil
	}
	return false, fmt.Errorf("%s must be 0 or 1, got %q", key, clip(v))
}

// debugUnless is slog.LevelInfo if cond, else slog.LevelDebug.
func debugUnless(cond bool) slog.Level {
	if cond {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// clip shortens a client-supplied value quoted in a failure reason.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
