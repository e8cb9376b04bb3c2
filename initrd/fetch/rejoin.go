package fetch

import (
	"errors"
	"fmt"
	"net/url"
)

// maxRejoins bounds the announces forced in one download: each adds a
// tracker announcer the client keeps for the torrent's life (see rejoin).
const maxRejoins = 3

// applianceBack reads the outcome of a progress event: err is what
// report returned, wasDown whether the previous events went unheard. down
// is whether the appliance is to be taken as gone now (no answer, or a 5xx:
// it is restarting); back is true when it answers again after being gone,
// the moment to rejoin its swarm. An event the appliance refused (4xx) was
// still answered.
func applianceBack(wasDown bool, err error) (down, back bool) {
	if err != nil && !errors.Is(err, errRefused) {
		return true, false
	}
	return false, wasDown
}

// rejoin makes the node announce to the appliance's tracker now, rather
// than when the client would retry on its own.
//
// While the appliance is gone the client's announces fail, and
// anacrolix/torrent (v1.61.0, client-tracker-announcer.go, nextAnnounceEvent)
// waits at least a minute after a failed announce before the next one to
// the same tracker URL. A restarted appliance's tracker knows no peer, and
// its seeder knows no node: without an announce the node would not find
// the seeder for up to a minute, and would fetch over the web seed
// meanwhile. Torrent.ModifyTrackers cannot reset that wait (the
// announcer's Stop does nothing; the state is kept per URL), and adding
// the same URL again is a no-op. A URL the client has not seen starts a
// new announcer whose first announce ("started") is due at once, so
// rejoin adds the tracker's URL with a fragment naming the attempt:
// fragments are not sent over HTTP (nor in UDP tracker requests), so the
// tracker sees the same announce from the same peer.
//
// The old announcer keeps announcing too (once the minute is up): the
// tracker sees the peer twice as often. maxRejoins bounds that.
func (s *Session) rejoin() {
	if s.rejoins >= maxRejoins {
		s.o.Log.Info("the appliance answers again; leaving the next announce to the client", "rejoins", s.rejoins)
		return
	}
	u, err := rejoinURL(s.Config.Tracker, s.rejoins+1)
	if err != nil {
		s.o.Log.Warn("cannot rejoin the swarm", "tracker", s.Config.Tracker, "err", err)
		return
	}
	s.rejoins++
	s.o.Log.Info("the appliance answers again; announcing to its tracker", "tracker", u)
	s.t.AddTrackers([][]string{{u}})
}

// rejoinURL is tracker with a fragment naming rejoin attempt n: a URL the
// BitTorrent client has not announced to, that sends the same requests.
func rejoinURL(tracker string, n int) (string, error) {
	u, err := url.Parse(tracker)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("tracker URL %q is not absolute", tracker)
	}
	u.Fragment = fmt.Sprintf("moobi-rejoin-%d", n)
	return u.String(), nil
}
