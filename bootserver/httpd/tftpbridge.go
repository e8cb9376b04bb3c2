package httpd

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
)

// grubFetches are the paths grub fetches over TFTP (see grubPath): the
// host's configuration, the node initramfs, an image's kernel and modules
// archive, a direct profile's kernel and initrds. Never an image's root
// filesystem: that travels over BitTorrent.
var grubFetches = regexp.MustCompile(`^/(boot/[^/]+\.grub|node/[^/]+|images/[^/]+/[^/]+/(kernel|modules)|profiles/[^/]+/(kernel|initrd/[0-9]+/[^/]+))$`)

// kernelFetches are the grubFetches of a kernel or an initrd.
var kernelFetches = regexp.MustCompile(`^/(node/[^/]+|images/[^/]+/[^/]+/(kernel|modules)|profiles/[^/]+/(kernel|initrd/[0-9]+/[^/]+))$`)

// KernelFetch reports whether a TFTP file name is grub fetching a kernel
// or an initrd: the node's kernel stage, as the same fetch over HTTP.
func KernelFetch(name string) bool { return kernelFetches.MatchString(path.Clean("/" + name)) }

// OpenTFTP answers a TFTP read of name, one of grub's fetches, as GET
// /NAME would be answered (same checks, same logs and node states), into
// an unlinked temporary file, which the TFTP server sends. ok is false
// for any other name. A name GET would answer 404 is fs.ErrNotExist.
func (s *Server) OpenTFTP(name string) (f *os.File, ok bool, err error) {
	p := path.Clean("/" + name)
	if !grubFetches.MatchString(p) {
		return nil, false, nil
	}
	req, err := http.NewRequest(http.MethodGet, p, nil)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %q", fs.ErrNotExist, name)
	}
	tmp, err := os.CreateTemp("", "moobi-tftp-*")
	if err != nil {
		return nil, true, err
	}
	os.Remove(tmp.Name())
	w := &fileResponse{f: tmp, header: http.Header{}}
	s.Handler().ServeHTTP(w, req)
	switch {
	case w.err != nil:
		err = w.err
	case w.code == http.StatusNotFound:
		err = fmt.Errorf("%w: %s", fs.ErrNotExist, p)
	case w.code != 0 && w.code != http.StatusOK:
		err = fmt.Errorf("GET %s: status %d", p, w.code)
	}
	if err == nil {
		_, err = tmp.Seek(0, 0)
	}
	if err != nil {
		tmp.Close()
		return nil, true, err
	}
	return tmp, true, nil
}

// fileResponse is an http.ResponseWriter that writes the body to a file.
type fileResponse struct {
	f      *os.File
	header http.Header
	code   int
	err    error
}

func (w *fileResponse) Header() http.Header { return w.header }

func (w *fileResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *fileResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.code != http.StatusOK {
		return len(b), nil // an error page: not the file
	}
	n, err := w.f.Write(b)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
