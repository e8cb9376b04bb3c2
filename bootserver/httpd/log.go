package httpd

import (
	"io"
	"net/http"
	"strings"
	"time"
)

type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps sendfile working for files served through the wrapper.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs one line per request (method, URI, client, status,
// bytes, duration, and the MAC when the path names one) and counts it.
func (s *Server) logRequests(next http.Handler) http.Handler {
	mux, _ := next.(*http.ServeMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" && mux != nil {
			_, route = mux.Handler(r)
		}
		if route == "" {
			route = "unmatched"
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		attrs := []any{"method", r.Method, "uri", r.RequestURI, "client", r.RemoteAddr, "status", sw.code,
			"bytes", sw.bytes, "duration", time.Since(start).Round(time.Microsecond)}
		if mac := macInPath(r.URL.Path); mac != "" {
			attrs = append(attrs, "mac", mac)
		}
		s.Log.Info("http request", attrs...)
		if s.Count != nil {
			s.Count(route, sw.code)
		}
	})
}

// macInPath returns the MAC named by /boot/{mac}.ipxe or .grub, if any.
func macInPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "/boot/"); ok {
		if mac, _, ok := scriptFormat(rest); ok {
			return mac
		}
		return rest
	}
	return ""
}
