package httpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moobi/images/catalog"
	"moobi/inventory"
	"moobi/nodes"
)

type counts map[string]int

func setup(t *testing.T) (*httptest.Server, []byte, counts) {
	t.Helper()
	s, kernel, c := setupServer(t)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, kernel, c
}

// setupServer is the Server of setup, not yet serving.
func setupServer(t *testing.T) (*Server, []byte, counts) {
	t.Helper()
	dir := t.TempDir()
	kernel := make([]byte, 300_000)
	rand.Read(kernel)
	os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), kernel, 0o644)
	os.WriteFile(filepath.Join(dir, "rescue.cpio.gz"), []byte("initrd-bytes"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("TOP-SECRET-CONTENT"), 0o644)
	yaml := fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
  ipxe_dir: %[1]s/ipxe
profiles:
  rescue:
    kernel: %[1]s/vmlinuz
    initrd: [%[1]s/rescue.cpio.gz]
    cmdline: console=ttyS0 quiet
  web:
    image: web
hosts:
  rack1-node01:
    mac: 52:54:00:12:34:01
    profile: rescue
  rack1-node02:
    mac: 52:54:00:12:34:02
    profile: web
`, dir)
	inv, err := inventory.Parse(filepath.Join(dir, "hosts.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c := counts{}
	s := &Server{
		Inventory: func() *inventory.Inventory { return inv },
		BaseURL:   func() string { return "http://10.99.0.1:8080" },
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Count:     func(route string, code int) { c[fmt.Sprintf("%s %d", route, code)]++ },
		Nodes:     nodes.New(),
	}
	return s, kernel, c
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestBootScript(t *testing.T) {
	srv, _, c := setup(t)
	resp, body := get(t, srv.URL+"/boot/52:54:00:12:34:01.ipxe")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	script := string(body)
	for _, want := range []string{
		"#!ipxe\n",
		"kernel http://10.99.0.1:8080/profiles/rescue/kernel initrd=rescue.cpio.gz console=ttyS0 quiet moobi.hostname=rack1-node01 moobi.boot=",
		"initrd http://10.99.0.1:8080/profiles/rescue/initrd/0/rescue.cpio.gz || goto failed\n",
		"boot || goto failed\n",
		// After a failure, the current script: what the appliance says now.
		"chain --replace --autofree http://10.99.0.1:8080/boot/52:54:00:12:34:01.ipxe || goto failed\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if c["GET /boot/{script} 200"] != 1 {
		t.Errorf("request not counted: %v", c)
	}
}

func TestNotBooted(t *testing.T) {
	srv, _, _ := setup(t)
	for _, path := range []string{
		"/boot/52:54:00:99:99:99.ipxe", // unknown MAC
		"/boot/52:54:00:12:34:02.ipxe", // image profile without a catalog
		"/boot/not-a-mac.ipxe",
		"/boot/52:54:00:12:34:01",
		"/profiles/web/kernel",
		"/profiles/nosuch/kernel",
		"/profiles/rescue/initrd/1/rescue.cpio.gz",
		"/profiles/rescue/initrd/0/other.gz",
		"/profiles/rescue/initrd/-1/rescue.cpio.gz",
	} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404 (%q)", path, resp.StatusCode, body)
		}
	}
}

// TestPathTricks: nothing outside what the inventory names is reachable.
func TestPathTricks(t *testing.T) {
	srv, _, _ := setup(t)
	for _, path := range []string{
		"/profiles/rescue/initrd/0/..%2f..%2fsecret",
		"/profiles/rescue/initrd/0/../../../secret",
		"/profiles/..%2f..%2fsecret/kernel",
		"/boot/..%2fsecret.ipxe",
		"/profiles/rescue/kernel/../../../../etc/passwd",
		"/secret",
		"/%2e%2e/secret",
	} {
		resp, err := http.Get(srv.URL + path) // follows the mux's cleaning redirects
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || bytes.Contains(body, []byte("TOP-SECRET")) || bytes.Contains(body, []byte("root:")) {
			t.Errorf("GET %s: status %d, body %q", path, resp.StatusCode, body)
		}
	}
}

func TestKernelRange(t *testing.T) {
	srv, kernel, _ := setup(t)
	resp, body := get(t, srv.URL+"/profiles/rescue/kernel")
	if resp.StatusCode != 200 || !bytes.Equal(body, kernel) || resp.ContentLength != int64(len(kernel)) {
		t.Fatalf("status %d, %d bytes, Content-Length %d; want the %d-byte kernel", resp.StatusCode, len(body), resp.ContentLength, len(kernel))
	}
	resp, body = get(t, srv.URL+"/profiles/rescue/kernel", "Range", "bytes=1000-1999")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, kernel[1000:2000]) {
		t.Fatalf("range: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-1999/%d", len(kernel)) {
		t.Fatalf("Content-Range %q", cr)
	}
	resp, body = get(t, srv.URL+"/profiles/rescue/initrd/0/rescue.cpio.gz")
	if resp.StatusCode != 200 || string(body) != "initrd-bytes" {
		t.Fatalf("initrd: status %d, %q", resp.StatusCode, body)
	}
}

// TestServeCorked: files sent by Serve (corked around sendfile) arrive
// whole, and the connection stays usable for the next request.
func TestServeCorked(t *testing.T) {
	s, kernel, _ := setupServer(t)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	url := "http://" + serveLoopback(t, s) + "/profiles/rescue/kernel"
	for i := range 3 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, kernel) {
			t.Fatalf("request %d: status %d, %d of %d bytes, %v", i, resp.StatusCode, len(body), len(kernel), err)
		}
	}
}

// serveLoopback runs s.Serve on a loopback port until the test ends and
// returns the address.
func serveLoopback(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func TestHealthz(t *testing.T) {
	srv, _, _ := setup(t)
	if resp, body := get(t, srv.URL+"/healthz"); resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

func TestImageScript(t *testing.T) {
	mac, _ := inventory.ParseMAC("52:54:00:12:34:02")
	h := &inventory.Host{Name: "rack1-node02", MAC: mac}
	p := &inventory.Profile{Name: "web", Image: "web", Cmdline: "console=ttyS0"}
	m := &catalog.Manifest{Name: "web", Version: "v7", Files: map[string]catalog.FileInfo{"kernel": {}, "rootfs": {}, "modules": {}}}
	b, err := ImageScript(h, p, m, "http://10.99.0.1:8080", "6a.b0.c1")
	if err != nil {
		t.Fatal(err)
	}
	want := "#!ipxe\n" +
		"echo Moobi: booting rack1-node02 (52:54:00:12:34:02) into image web version v7\n" +
		"imgfree\n" +
		"kernel http://10.99.0.1:8080/images/web/v7/kernel initrd=node-initrd.cpio.gz initrd=modules console=ttyS0 " +
		"moobi.server=http://10.99.0.1:8080 moobi.mac=52:54:00:12:34:02 moobi.hostname=rack1-node02 moobi.version=v7 moobi.boot=6a.b0.c1 || goto failed\n" +
		"initrd http://10.99.0.1:8080/node/node-initrd.cpio.gz || goto failed\n" +
		"initrd http://10.99.0.1:8080/images/web/v7/modules || goto failed\n" +
		"boot || goto failed\n:failed\necho Moobi: boot failed, retrying in 5 seconds\nsleep 5 ||\n" +
		"chain --replace --autofree http://10.99.0.1:8080/boot/52:54:00:12:34:02.ipxe || goto failed\n"
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Fatalf("script (-want +got):\n%s", diff)
	}
}
