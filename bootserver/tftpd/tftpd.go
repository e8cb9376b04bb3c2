// Package tftpd is the appliance's read-only TFTP service (RFC 1350, with
// the blksize and tsize options of RFC 2347-2349). It serves only the small
// files firmware needs before iPXE runs: the iPXE binaries. Everything large
// goes over HTTP, which is faster and needs no lock-step acknowledgements.
//
// TFTP answers over UDP to whatever source address a request claims, so
// the server bounds what a forged request can make it send: it answers
// only the boot networks (Server.Allowed), runs at most MaxTransfers
// transfers at once and MaxPerClient for one address (requests beyond are
// dropped unanswered), and sends the first packet of a transfer once: it
// retransmits only to a client that has acknowledged something, which a
// host forging another's address cannot do. A real client whose first
// packet was lost sends its request again.
package tftpd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"moobi/bootserver/fileroot"
)

// Result labels how a transfer ended.
type Result string

// Transfer results.
const (
	ResultOK = Result("ok")
	// ResultAborted is a client ending a transfer on purpose: UEFI firmware
	// asks for the size with tsize, then aborts with error 8 before it
	// downloads for real. Not a failure.
	ResultAborted  = Result("aborted")
	ResultRefused  = Result("refused")
	ResultNotFound = Result("not-found")
	ResultFailed   = Result("failed")
	// ResultOutside is a request from outside the boot networks, and
	// ResultBusy one beyond MaxTransfers or MaxPerClient: both dropped,
	// unanswered.
	ResultOutside = Result("outside")
	ResultBusy    = Result("busy")
)

// Defaults for the zero values of Server's bounds.
const (
	DefaultTimeout      = 2 * time.Second
	DefaultRetries      = 5
	DefaultMaxTransfers = 64
	// DefaultMaxPerClient leaves room for a client that asks again while
	// its first request still waits (UEFI's size probe, then the download).
	DefaultMaxPerClient = 4
	// DefaultMaxBlockSize fits a block in one Ethernet frame (1500 bytes
	// less the IPv4, UDP and TFTP headers).
	DefaultMaxBlockSize = 1468
)

// Observer is told how each transfer ended.
type Observer interface {
	TFTPTransfer(client net.IP, file string, result Result)
}

// Server serves files over TFTP. Write requests are refused.
type Server struct {
	// Open opens the file a client asked for. Errors wrapping
	// fileroot.ErrBadName are answered "access violation", fs.ErrNotExist
	// "file not found".
	Open func(name string) (*os.File, error)
	Log  *slog.Logger
	// Observer, if set, is told of every transfer and every request
	// dropped.
	Observer Observer
	// Allowed reports whether a request from addr is answered (nil: every
	// one); the others are dropped, as ResultOutside.
	Allowed func(addr netip.Addr) bool
	// Timeout is the per-packet retransmission timeout (default 2 s), and
	// Retries how many times a packet goes again to a client that has
	// acknowledged before (default 5).
	Timeout time.Duration
	Retries int
	// MaxTransfers and MaxPerClient bound the transfers running at once, in
	// all and from one address (defaults 64 and 4).
	MaxTransfers int
	MaxPerClient int
	// MaxBlockSize caps the blksize option (default 1468).
	MaxBlockSize int
}

// Listen opens UDP port 69 (or addr) for the server.
func Listen(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("tftp address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, fmt.Errorf("tftp listen %s: %w", addr, err)
	}
	return conn, nil
}

// Serve answers requests on conn until ctx ends; then it stops taking new
// requests and waits for running transfers to end. It closes conn.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	s.defaults()
	var local net.IP
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
		local = ua.IP
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.Log.Info("TFTP listening", "addr", conn.LocalAddr().String())
	var wg sync.WaitGroup
	defer wg.Wait()
	lim := &limiter{perClient: make(map[netip.Addr]int)}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp serve: %w", err)
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		peer := ua.AddrPort()
		ip := peer.Addr().Unmap()
		if s.Allowed != nil && !s.Allowed(ip) {
			s.Log.Debug("TFTP request dropped: source outside the boot networks", "client", ip.String())
			s.observe(ip.AsSlice(), "", ResultOutside)
			continue
		}
		req, err := parseRequest(buf[:n])
		if err != nil {
			s.Log.Debug("TFTP packet dropped", "client", ip.String(), "err", err)
			continue
		}
		if !lim.take(ip, s.MaxTransfers, s.MaxPerClient) {
			s.Log.Debug("TFTP request dropped: too many transfers", "client", ip.String(), "filename", req.filename)
			s.observe(ip.AsSlice(), req.filename, ResultBusy)
			continue
		}
		wg.Go(func() {
			defer lim.give(ip)
			s.serveRequest(local, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, peer.Port())), req)
		})
	}
}

func (s *Server) defaults() {
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Retries <= 0 {
		s.Retries = DefaultRetries
	}
	if s.MaxTransfers <= 0 {
		s.MaxTransfers = DefaultMaxTransfers
	}
	if s.MaxPerClient <= 0 {
		s.MaxPerClient = DefaultMaxPerClient
	}
	if s.MaxBlockSize <= 0 {
		s.MaxBlockSize = DefaultMaxBlockSize
	}
}

// limiter counts the transfers running, in all and per address.
type limiter struct {
	mu        sync.Mutex
	total     int
	perClient map[netip.Addr]int
}

func (l *limiter) take(ip netip.Addr, total, perClient int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= total || l.perClient[ip] >= perClient {
		return false
	}
	l.total++
	l.perClient[ip]++
	return true
}

func (l *limiter) give(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perClient[ip]--; l.perClient[ip] <= 0 {
		delete(l.perClient, ip)
	}
}

// Messages sent to clients in TFTP error packets: they say what went
// wrong, never where on the appliance's disk.
const (
	msgRefused  = "access violation: file name refused"
	msgNotFound = "file not found"
	msgFailed   = "cannot read file"
)

// serveRequest answers one request from its own socket, and reports how
// it ended.
func (s *Server) serveRequest(local net.IP, peer *net.UDPAddr, req *request) {
	log := s.Log.With("filename", req.filename, "client", peer.IP.String())
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: local})
	if err != nil {
		log.Error("TFTP transfer socket", "err", err)
		s.observe(peer.IP, req.filename, ResultFailed)
		return
	}
	defer conn.Close()
	t := &transfer{conn: conn, peer: peer, timeout: s.Timeout, retries: s.Retries, buf: make([]byte, 1500)}
	// Refusals are reported before the error goes out, so that whoever
	// reads the metrics after the client saw the error finds it counted.
	if req.write {
		log.Info("TFTP write request refused")
		s.observe(peer.IP, req.filename, ResultRefused)
		t.fail(errCodeAccess, "access violation: this server is read-only")
		return
	}
	if req.mode != "octet" {
		log.Info("TFTP request refused: mode", "mode", clip(req.mode))
		s.observe(peer.IP, req.filename, ResultRefused)
		t.fail(errCodeUndefined, "only octet mode is served")
		return
	}
	f, err := s.Open(req.filename)
	if err != nil {
		r, code, msg := ResultFailed, uint16(errCodeUndefined), msgFailed
		switch {
		case errors.Is(err, fileroot.ErrBadName):
			log.Warn("TFTP request refused", "err", err)
			r, code, msg = ResultRefused, errCodeAccess, msgRefused
		case errors.Is(err, fs.ErrNotExist):
			log.Info("TFTP file not found")
			r, code, msg = ResultNotFound, errCodeNotFound, msgNotFound
		default:
			log.Error("TFTP open failed", "err", err)
		}
		s.observe(peer.IP, req.filename, r)
		t.fail(code, msg)
		return
	}
	defer f.Close()
	start := time.Now()
	n, err := t.send(req, f, s.MaxBlockSize)
	var ce *clientError
	switch {
	case err == nil:
		log.Info("TFTP transfer done", "bytes", n, "duration", time.Since(start).Round(time.Millisecond))
		s.observe(peer.IP, req.filename, ResultOK)
	case errors.As(err, &ce) && ce.code == errCodeOptions:
		log.Debug("TFTP transfer aborted by the client (size probe)", "err", err)
		s.observe(peer.IP, req.filename, ResultAborted)
	case errors.Is(err, errNoAnswer) && !t.proven:
		// Nothing came back: a client that asks again, or a forged source.
		log.Debug("TFTP transfer unanswered", "bytes_sent", t.sent)
		s.observe(peer.IP, req.filename, ResultFailed)
	default:
		log.Warn("TFTP transfer failed", "bytes", n, "err", err)
		s.observe(peer.IP, req.filename, ResultFailed)
	}
}

func (s *Server) observe(ip net.IP, file string, r Result) {
	if s.Observer != nil {
		s.Observer.TFTPTransfer(ip, file, r)
	}
}
