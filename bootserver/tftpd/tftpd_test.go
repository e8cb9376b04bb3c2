package tftpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"moobi/bootserver/fileroot"
)

type recorder struct {
	mu      sync.Mutex
	results map[string][]Result
}

func (r *recorder) TFTPTransfer(_ net.IP, file string, res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[file] = append(r.results[file], res)
}

func (r *recorder) get(file string) []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.results[file]...)
}

// start serves two folders (an iPXE folder and data_dir/tftp) on a loopback
// port and returns its address.
func start(t *testing.T) (addr string, ipxe []byte, rec *recorder) {
	t.Helper()
	return startWith(t, nil)
}

// startWith is start with the Server changed by mod first.
func startWith(t *testing.T, mod func(*Server)) (addr string, ipxe []byte, rec *recorder) {
	t.Helper()
	base := t.TempDir()
	ipxeDir, tftpDir, outside := filepath.Join(base, "ipxe"), filepath.Join(base, "tftp"), filepath.Join(base, "outside")
	for _, d := range []string{ipxeDir, tftpDir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ipxe = make([]byte, 70_000) // several 1468-byte blocks, not a multiple of 512
	rand.Read(ipxe)
	mustWrite(t, filepath.Join(ipxeDir, "undionly.kpxe"), ipxe)
	mustWrite(t, filepath.Join(tftpDir, "hello.txt"), []byte("hello\n"))
	mustWrite(t, filepath.Join(outside, "secret"), []byte("secret"))
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(tftpDir, "escape")); err != nil {
		t.Fatal(err)
	}
	conn, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec = &recorder{results: map[string][]Result{}}
	s := &Server{
		Open:     fileroot.Roots{ipxeDir, tftpDir}.Open,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observer: rec,
	}
	if mod != nil {
		mod(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn.LocalAddr().String(), ipxe, rec
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fetch(t *testing.T, addr, name string, blksize int) ([]byte, int64, error) {
	t.Helper()
	c, err := tftp.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(true)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, 0, err
	}
	size, _ := wt.(tftp.IncomingTransfer).Size()
	var buf bytes.Buffer
	_, err = wt.WriteTo(&buf)
	return buf.Bytes(), size, err
}

func TestServe(t *testing.T) {
	addr, ipxe, rec := start(t)
	for _, blk := range []int{0, 1468} {
		got, tsize, err := fetch(t, addr, "undionly.kpxe", blk)
		if err != nil {
			t.Fatalf("blksize %d: %v", blk, err)
		}
		if !bytes.Equal(got, ipxe) {
			t.Fatalf("blksize %d: got %d bytes, want the %d-byte file", blk, len(got), len(ipxe))
		}
		if tsize != int64(len(ipxe)) {
			t.Fatalf("tsize %d, want %d", tsize, len(ipxe))
		}
	}
	if got, _, err := fetch(t, addr, "hello.txt", 0); err != nil || string(got) != "hello\n" {
		t.Fatalf("second folder: %q, %v", got, err)
	}
	// The server learns of success from the client's last ACK, after the
	// client is done: poll.
	deadline := time.Now().Add(5 * time.Second)
	for r := rec.get("undionly.kpxe"); len(r) != 2 || r[0] != ResultOK || r[1] != ResultOK; r = rec.get("undionly.kpxe") {
		if time.Now().After(deadline) {
			t.Fatalf("observed %v, want two ok transfers", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefused(t *testing.T) {
	addr, _, rec := start(t)
	tests := []struct {
		name, wantMsg string
		want          Result
	}{
		{"../outside/secret", "access violation", ResultRefused},
		{"/etc/passwd", "access violation", ResultRefused},
		{"escape", "access violation", ResultRefused},
		{"sub/../../outside/secret", "access violation", ResultRefused},
		{"missing.efi", "file not found", ResultNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := fetch(t, addr, tc.name, 0)
			if err == nil {
				t.Fatalf("read %q: got %d bytes, want an error", tc.name, len(got))
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q, want it to say %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "/tmp") {
				t.Fatalf("error %q leaks a server path", err)
			}
			if r := rec.get(tc.name); len(r) != 1 || r[0] != tc.want {
				t.Fatalf("observed %v, want [%s]", r, tc.want)
			}
		})
	}
}

func TestWriteRefused(t *testing.T) {
	addr, _, _ := start(t)
	c, err := tftp.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := c.Send("upload.bin", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("data"))
	}
	if err == nil {
		t.Fatal("write request accepted")
	}
}

// TestCurlClient fetches with a TFTP client that is not ours: curl.
func TestCurlClient(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is needed for this test: %v", err)
	}
	addr, ipxe, _ := start(t)
	out, err := exec.Command(curl, "-sS", "--tftp-blksize", "1428", "tftp://"+addr+"/undionly.kpxe").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if !bytes.Equal(out, ipxe) {
		t.Fatalf("curl got %d bytes, want %d", len(out), len(ipxe))
	}
	out, err = exec.Command(curl, "-sS", "tftp://"+addr+"/..%2Foutside%2Fsecret").CombinedOutput()
	if err == nil || bytes.Contains(out, []byte("secret")) {
		t.Fatalf("curl escape: err %v, output %q", err, out)
	}
}
