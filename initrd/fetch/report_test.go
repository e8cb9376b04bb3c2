package fetch

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"moobi/nodeapi"
)

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestReportUntilHeard: an event the appliance cannot take (503, as while it
// restarts) is posted again, every ProgressEvery at first and then twice as
// long each time; once the appliance takes it, nothing more is posted,
// however long the node runs. Runs on synctest's clock: the hour below
// takes no time.
func TestReportUntilHeard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu    sync.Mutex
			down  = true
			posts []time.Duration // when each post came, from the start
			heard []string        // the states the appliance took
		)
		start := time.Now()
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			var e nodeapi.Event
			if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
				t.Errorf("event body: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			posts = append(posts, time.Since(start))
			code := http.StatusServiceUnavailable
			if !down {
				code = http.StatusNoContent
				heard = append(heard, e.State)
			}
			return &http.Response{StatusCode: code, Status: http.StatusText(code), Body: http.NoBody, Request: r}, nil
		})
		mac, _ := net.ParseMAC("52:54:00:12:34:01")
		o := Options{Server: "http://appliance", MAC: mac, ProgressEvery: 2 * time.Second,
			HTTP: &http.Client{Transport: rt}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		o.defaults()
		s := &Session{o: o}
		defer func() { // Close, less the BitTorrent client this session has none of
			if s.stop != nil {
				s.stop()
			}
			s.bg.Wait()
		}()
		check := func(when string, wantPosts []time.Duration, wantHeard []string) {
			t.Helper()
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(posts, wantPosts) || !slices.Equal(heard, wantHeard) {
				t.Fatalf("%s: posts at %v, heard %q; want posts at %v, heard %q", when, posts, heard, wantPosts, wantHeard)
			}
		}

		s.reportUntilHeard(context.Background(), nodeapi.Event{State: nodeapi.StateVerified})
		time.Sleep(10 * time.Second)
		check("appliance down for 10 s", []time.Duration{0, 2 * time.Second, 6 * time.Second}, nil)

		mu.Lock()
		down = false
		mu.Unlock()
		time.Sleep(5 * time.Second) // the next post is due 14 s in
		want := []time.Duration{0, 2 * time.Second, 6 * time.Second, 14 * time.Second}
		check("appliance back", want, []string{nodeapi.StateVerified})

		time.Sleep(time.Hour)
		check("an hour after it was heard", want, []string{nodeapi.StateVerified})
	})
}
