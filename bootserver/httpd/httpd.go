// Package httpd is the appliance's HTTP service: iPXE scripts for each
// host, the kernels and initrds they load (with Content-Length and Range),
// health and metrics. Everything after the iPXE binary travels over HTTP.
package httpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"moobi/boottoken"
	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodeapi"
	"moobi/nodes"
	"moobi/power"
)

// Server is the HTTP service.
type Server struct {
	// Inventory returns the inventory in force.
	Inventory func() *inventory.Inventory
	// BaseURL returns the appliance's HTTP root as nodes reach it, e.g.
	// "http://10.99.0.1:8080".
	BaseURL func() string
	// Metrics, if set, is served at /metrics.
	Metrics http.Handler
	// Count, if set, is told the route pattern and status of every request.
	Count func(route string, code int)
	// Refused, if set, is told of every connection closed as it was
	// accepted because its address held MaxConnsPerAddress open already.
	Refused func()
	Log     *slog.Logger

	// Catalog, if set, serves image profiles, /images/ and boot configs.
	Catalog *catalog.Catalog
	// Tracker, if set, answers /announce.
	Tracker http.Handler
	// Nodes keeps node states; it must be set.
	Nodes *nodes.Registry
	// NodeInitrd returns the path of the node initramfs.
	NodeInitrd func() string
	// WebSeedSent, if set, is told of root filesystem bytes sent over HTTP.
	WebSeedSent func(image string, n int64)
	// Signer, if set, signs boot configs (else they go unsigned, and nodes refuse them).
	Signer Signer
	// Uploaded, if set, returns the bytes the appliance uploaded of each
	// image (BitTorrent and web seed), for the swarm view.
	Uploaded func() map[string]int64
	// SwarmCounts, if set, returns the live seeders and leechers of a
	// torrent, for the swarm view.
	SwarmCounts func(infohash [20]byte) (seeders, leechers int)
	// Dashboard, if set, is served at / (and below /ui/).
	Dashboard http.Handler
	// Power, if set, serves /v1/power behind Admin, which must then be set:
	// it wraps handlers that need the admin token (adminauth.Guard.Wrap).
	Power PowerRunner
	Admin func(http.Handler) http.Handler
	// Rollouts, if set, serves /v1/rollouts (writes behind Admin, which
	// must then be set; reads as the read-only views) and gives the
	// version pins boot scripts follow.
	Rollouts Rollouts
	// PowerStates, if set, returns the last power reading of each host
	// with a BMC, by host name, and a generation that changes with them
	// (poller.Poller.Readings): the node views and the live stream carry
	// them.
	PowerStates func() (map[string]power.Reading, uint64)
	// ReadAuth, if set, wraps the read-only views (see readOnlyRoutes):
	// adminauth.Guard.Wrap with appliance.read_auth token.
	ReadAuth func(http.Handler) http.Handler
	// AdminElsewhere leaves the read-only views out of Handler: they are
	// served by ServeAdmin on appliance.admin_listen.
	AdminElsewhere bool

	limits       nodeLimits // per node, for per-host endpoints
	scriptLimits nodeLimits // per address, for boot scripts
	tokensOnce   sync.Once
	tokens       *boottoken.Tokens // see bootTokens
	// closing is closed when the server starts draining: live streams end.
	closing     chan struct{}
	closingOnce sync.Once // makes closing, in Serve or ServeAdmin
}

// Handler returns the service's routes, wrapped in request logging.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /boot/{script}", s.bootScript)
	mux.HandleFunc("GET /profiles/{profile}/kernel", s.kernel)
	mux.HandleFunc("GET /profiles/{profile}/initrd/{index}/{name}", s.initrd)
	mux.HandleFunc("GET /node/{name}", s.nodeInitrd)
	mux.HandleFunc("GET /ipxe/{name}", s.ipxeBinary)
	mux.HandleFunc("GET /images/{name}/{version}/{file}", s.imageFile)
	mux.HandleFunc("GET /v1/images", s.listImages)
	mux.HandleFunc("GET /v1/nodes/{mac}/boot", s.bootConfig)
	mux.HandleFunc("POST /v1/nodes/{mac}/events", s.postEvent)
	mux.HandleFunc("GET /v1/nodes/{mac}/overlay", s.nodeOverlay)
	if !s.AdminElsewhere {
		s.readOnlyRoutes(mux)
	}
	if s.Power != nil {
		s.powerRoutes(mux)
	}
	if s.Rollouts != nil {
		s.rolloutRoutes(mux)
	}
	if s.Tracker != nil {
		mux.Handle("GET /announce", s.Tracker)
	}
	return s.logRequests(mux)
}

// Serve serves on ln until ctx ends, then drains running requests for up
// to 10 s with a fresh context before closing what is left.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	s.closingOnce.Do(func() { s.closing = make(chan struct{}) })
	srv.RegisterOnShutdown(func() { close(s.closing) })
	done := make(chan error, 1)
	go func() { done <- srv.Serve(limitPerAddress(ln, MaxConnsPerAddress, s.Refused)) }()
	s.Log.Info("HTTP listening", "addr", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		s.Log.Warn("HTTP drain incomplete; closing", "err", err)
		srv.Close()
	}
	return nil
}

// lookup finds the host a MAC in a URL belongs to and the profile it boots.
func (s *Server) lookup(macText string) (*inventory.Host, *inventory.Profile, error) {
	mac, err := inventory.ParseMAC(macText)
	if err != nil {
		return nil, nil, fmt.Errorf("malformed MAC %q", macText)
	}
	h, p, ok := s.Inventory().Lookup(mac)
	if !ok {
		return nil, nil, fmt.Errorf("the inventory does not boot %s", mac)
	}
	return h, p, nil
}

func (s *Server) bootScript(w http.ResponseWriter, r *http.Request) {
	// MAC.ipxe is iPXE's script, MAC.grub grub's configuration (Secure Boot).
	macText, format, ok := scriptFormat(r.PathValue("script"))
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h, p, err := s.lookup(macText)
	if err != nil {
		s.Log.Info("no boot script", "mac", macText, "client", r.RemoteAddr, "err", err)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	// A request with no address is grub's, through the TFTP service
	// (OpenTFTP), whose transfers are bounded per client there: one
	// shared bucket here would throttle a whole rack booting at once.
	if ip != "" && !s.scriptLimits.allow(ip, ScriptRequestsPerSecond, ScriptRequestBurst) {
		s.Log.Warn("boot script refused: rate limit", "mac", h.MAC.String(), "client", ip)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	// Each script carries a fresh boot token (see boottoken): the node
	// presents it with its boot config and event requests.
	token := s.bootTokens().Issue(h.MAC)
	// Rendered into a buffer first: a client never gets half a script.
	var m *catalog.Manifest
	if !p.Direct() {
		pinned := s.pinnedVersion(h, p)
		if m, err = s.manifestFor(p, pinned); err != nil {
			s.Log.Error("no boot script: the host's image has no current version", "mac", h.MAC.String(), "image", p.Image, "err", err)
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
	}
	body, err := renderBoot(format, h, p, m, s.BaseURL(), token)
	if err != nil {
		s.Log.Error("render boot script", "mac", h.MAC.String(), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	what := "iPXE fetched its boot script"
	if format == formatGrub {
		what = "grub fetched its configuration"
	}
	s.Nodes.Seen(h.MAC, h.Name, nodeapi.StateFirmware, what, ip)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request) *inventory.Profile {
	p := s.Inventory().Profiles[r.PathValue("profile")]
	if p == nil || !p.Direct() {
		http.Error(w, "not found", http.StatusNotFound)
		return nil
	}
	return p
}

func (s *Server) kernel(w http.ResponseWriter, r *http.Request) {
	if p := s.profile(w, r); p != nil {
		s.observe(r, nodeapi.StateKernel, "fetched the kernel")
		s.serveFile(w, r, p.Kernel)
	}
}

func (s *Server) initrd(w http.ResponseWriter, r *http.Request) {
	p := s.profile(w, r)
	if p == nil {
		return
	}
	i, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || i < 0 || i >= len(p.Initrd) || p.InitrdName(i) != r.PathValue("name") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	s.serveFile(w, r, p.Initrd[i])
}

func (s *Server) nodeInitrd(w http.ResponseWriter, r *http.Request) {
	if s.NodeInitrd == nil || r.PathValue("name") != NodeInitrdName {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	s.serveFile(w, r, s.NodeInitrd())
}

// serveFile sends a file named by the inventory (never by the client),
// with Content-Length, Last-Modified and Range support.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, path string) {
	f, err := os.Open(path)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, os.ErrNotExist) {
			code = http.StatusNotFound
		}
		s.Log.Error("open boot file", "file", path, "err", err)
		http.Error(w, http.StatusText(code), code)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok && st.Size() >= corkMin {
		defer cork(c)()
	}
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// connKey is the request context key of the request's connection.
type connKey struct{}

// corkMin is the smallest file sent corked: below it the one extra
// segment a header costs does not matter.
const corkMin = 64 << 10
