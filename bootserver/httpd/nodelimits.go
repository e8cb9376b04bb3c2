package httpd

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// nodeLimits rate-limits requests by a key: each node's requests to its
// per-host endpoints (a node posts a handful of events per boot and a
// progress report every few seconds; anything much faster is a bug or an
// attack), and each address's boot script fetches.
//
// A limiter whose bucket is full again is idle: dropping it changes
// nothing, as a new one starts full. Every pruneLimitsEvery the idle ones
// are dropped, so the map holds the keys active in the last minute or so
// (a host removed from the inventory, or an address gone, leaves it
// then), and never more than maxLimited.
type nodeLimits struct {
	mu     sync.Mutex
	m      map[string]*rate.Limiter
	pruned time.Time
	now    func() time.Time // time.Now if nil, for tests
}

// maxLimited bounds the keys nodeLimits holds: past it, the idle limiters
// are dropped, and if that is not enough, all of them.
const maxLimited = 16384

// pruneLimitsEvery is how often the idle limiters are dropped.
const pruneLimitsEvery = time.Minute

func (l *nodeLimits) allow(key string, perSecond float64, burst int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	if l.m == nil {
		l.m = map[string]*rate.Limiter{}
	}
	if now.Sub(l.pruned) >= pruneLimitsEvery {
		l.prune(now)
	}
	lim := l.m[key]
	if lim == nil {
		if len(l.m) >= maxLimited {
			l.prune(now)
			if len(l.m) >= maxLimited {
				clear(l.m)
			}
		}
		lim = rate.NewLimiter(rate.Limit(perSecond), burst)
		l.m[key] = lim
	}
	return lim.AllowN(now, 1)
}

// prune drops the idle limiters. l.mu is held.
func (l *nodeLimits) prune(now time.Time) {
	for k, v := range l.m {
		if v.TokensAt(now) >= float64(v.Burst()) {
			delete(l.m, k)
		}
	}
	l.pruned = now
}

// len returns how many limiters l holds.
func (l *nodeLimits) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
