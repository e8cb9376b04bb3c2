package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"moobi/bootserver/dashboard"
)

func serve(t *testing.T, h http.Handler, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestHandlerServesPageAndAssets(t *testing.T) {
	h := dashboard.Handler()
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<meta name="viewport"`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "new EventSource('/v1/stream')"},
		{"/ui/style.css", "text/css; charset=utf-8", ".rack"},
	} {
		resp, body := serve(t, h, "GET", tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tc.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (revalidate: the UI changes with the appliance)", tc.path, got)
		}
		if resp.Header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag, so revalidation always downloads", tc.path)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tc.path, got)
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q does not restrict scripts to the appliance", tc.path, resp.Header.Get("Content-Security-Policy"))
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}

		// A browser that has the file revalidates it for nothing.
		resp, body = serve(t, h, "GET", tc.path, "If-None-Match", resp.Header.Get("ETag"))
		if resp.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s with its ETag: status %d, %d bytes; want 304 and no body", tc.path, resp.StatusCode, len(body))
		}
		resp, body = serve(t, h, "HEAD", tc.path)
		if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("HEAD %s: status %d, %q, %d bytes", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
}

func TestHandlerNotFound(t *testing.T) {
	h := dashboard.Handler()
	for _, path := range []string{"/ui/x", "/ui/", "/ui/app.js/", "/ui/static/app.js", "/ui/../static/app.js", "/index.html", "/static/app.js", "/v1/nodes"} {
		if resp, _ := serve(t, h, "GET", path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := serve(t, h, "POST", "/"); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: status %d, Allow %q; want 405 and GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestPageIsSelfContained checks that the page loads only what the handler
// serves (no CDN: the appliance lives on an isolated VLAN) and that the
// script never parses data as HTML.
func TestPageIsSelfContained(t *testing.T) {
	h := dashboard.Handler()
	_, page := serve(t, h, "GET", "/")
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("page references %d files, want the script and the stylesheet", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if ref == "data:," {
			continue // the empty favicon, so browsers do not ask for /favicon.ico
		}
		if !strings.HasPrefix(ref, "/ui/") {
			t.Errorf("page references %q, outside /ui/", ref)
			continue
		}
		if resp, _ := serve(t, h, "GET", ref); resp.StatusCode != http.StatusOK {
			t.Errorf("page references %s, which answers %d", ref, resp.StatusCode)
		}
	}
	_, js := serve(t, h, "GET", "/ui/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s; insert data with textContent", bad)
		}
	}
}
