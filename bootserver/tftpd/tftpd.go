// Package tftpd is the appliance's read-only TFTP service (RFC 1350, with
// the blksize and tsize options of RFC 2348/2349). It serves only the small
// files firmware needs before iPXE runs: the iPXE binaries. Everything large
// goes over HTTP, which is faster and needs no lock-step acknowledgements.
package tftpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pin/tftp/v3"

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
	// Observer, if set, is told of every transfer.
	Observer Observer
	// Timeout is the per-packet retransmission timeout (default 2 s).
	Timeout time.Duration
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
// requests and waits for running transfers to end. conn should be a
// *net.UDPConn: on anything else pin/tftp falls back to 512-byte blocks.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	srv := tftp.NewServer(s.read, nil)
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	srv.SetTimeout(timeout)
	srv.SetRetries(5)
	srv.SetHook(hook{s})
	stop := context.AfterFunc(ctx, srv.Shutdown)
	defer stop()
	s.Log.Info("TFTP listening", "addr", conn.LocalAddr().String())
	err := srv.Serve(conn)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("tftp serve: %w", err)
}

// Messages sent to clients in TFTP error packets: they say what went
// wrong, never where on the appliance's disk.
const (
	msgRefused  = "access violation: file name refused"
	msgNotFound = "file not found"
	msgFailed   = "cannot read file"
)

// read handles one read request. How it ended is reported by the hook.
func (s *Server) read(filename string, rf io.ReaderFrom) error {
	client := rf.(tftp.OutgoingTransfer).RemoteAddr()
	log := s.Log.With("filename", filename, "client", client.IP.String())
	f, err := s.Open(filename)
	if err != nil {
		switch {
		case errors.Is(err, fileroot.ErrBadName):
			log.Warn("TFTP request refused", "err", err)
			return errors.New(msgRefused)
		case errors.Is(err, fs.ErrNotExist):
			log.Info("TFTP file not found")
			return errors.New(msgNotFound)
		}
		log.Error("TFTP open failed", "err", err)
		return errors.New(msgFailed)
	}
	defer f.Close()
	start := time.Now()
	// *os.File is an io.Seeker, so pin/tftp answers tsize by itself.
	n, err := rf.ReadFrom(f)
	if err != nil {
		return err
	}
	log.Info("TFTP transfer done", "bytes", n, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

func (s *Server) observe(ip net.IP, file string, r Result) {
	if s.Observer != nil {
		s.Observer.TFTPTransfer(ip, file, r)
	}
}

// classify tells how a failed transfer ended from its error.
func classify(err error) Result {
	msg := err.Error()
	switch {
	case msg == msgRefused:
		return ResultRefused
	case msg == msgNotFound:
		return ResultNotFound
	case strings.Contains(msg, "code=8"):
		return ResultAborted
	}
	return ResultFailed
}

type hook struct{ s *Server }

func (h hook) OnSuccess(st tftp.TransferStats) {
	h.s.observe(st.RemoteAddr, st.Filename, ResultOK)
}

func (h hook) OnFailure(st tftp.TransferStats, err error) {
	if st.Filename == "" {
		// Not a transfer: a malformed or unexpected packet on the main port.
		h.s.Log.Debug("TFTP packet dropped", "err", err)
		return
	}
	r := classify(err)
	switch r {
	case ResultAborted:
		h.s.Log.Debug("TFTP transfer aborted by the client (size probe)", "filename", st.Filename, "client", st.RemoteAddr.String(), "err", err)
	case ResultFailed:
		h.s.Log.Warn("TFTP transfer failed", "filename", st.Filename, "client", st.RemoteAddr.String(), "err", err)
	}
	h.s.observe(st.RemoteAddr, st.Filename, r)
}
