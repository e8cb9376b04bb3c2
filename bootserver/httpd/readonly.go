package httpd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// readOnlyRoutes registers the read-only views — the node list and each
// node's details, the live stream, the swarm view, the metrics and the
// dashboard — on mux, each behind s.ReadAuth when it is set.
func (s *Server) readOnlyRoutes(mux *http.ServeMux) {
	wrap := func(h http.Handler) http.Handler {
		if s.ReadAuth != nil {
			return s.ReadAuth(h)
		}
		return h
	}
	mux.Handle("GET /v1/nodes", wrap(http.HandlerFunc(s.listNodes)))
	mux.Handle("GET /v1/nodes/{mac}", wrap(http.HandlerFunc(s.getNode)))
	mux.Handle("GET /v1/swarm", wrap(http.HandlerFunc(s.listSwarms)))
	mux.Handle("GET /v1/stream", wrap(http.HandlerFunc(s.stream)))
	if s.Rollouts != nil {
		s.rolloutReadRoutes(mux, wrap)
	}
	if s.Dashboard != nil {
		mux.Handle("GET /{$}", wrap(s.Dashboard))
		mux.Handle("GET /ui/", wrap(s.Dashboard))
	}
	if s.Metrics != nil {
		mux.Handle("GET /metrics", wrap(s.Metrics))
	}
}

// AdminHandler returns the read-only views alone, wrapped in request
// logging: what ServeAdmin serves on appliance.admin_listen.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.readOnlyRoutes(mux)
	return s.logRequests(mux)
}

// ServeAdmin serves AdminHandler on ln until ctx ends, then drains running
// requests for up to 10 s (live streams end when Serve drains).
func (s *Server) ServeAdmin(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.AdminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.closingOnce.Do(func() { s.closing = make(chan struct{}) })
	done := make(chan error, 1)
	go func() { done <- srv.Serve(limitPerAddress(ln, MaxConnsPerAddress, s.Refused)) }()
	s.Log.Info("HTTP admin views listening", "addr", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("http admin serve: %w", err)
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		srv.Close()
	}
	return nil
}
