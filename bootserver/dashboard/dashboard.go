// Package dashboard is the appliance's operator dashboard: one page, served
// at /, that shows the rack at a glance (a tile per node, coloured and
// labelled by boot state, with download progress), each image's swarm (how
// much of the download the nodes got from each other rather than from the
// appliance) and, for a chosen node, its boot timeline, download figures,
// last error and event log.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no
// build step, no framework, nothing fetched from another site, so it works
// on an isolated boot VLAN. It reads the appliance's JSON API (/v1/nodes,
// /v1/nodes/{mac}, /v1/swarm) and follows /v1/stream (server-sent events)
// for live updates.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// contentTypes maps the extensions of the embedded files to their media
// types; a file with another extension is not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// csp allows the page only its own scripts, styles and API: data inserted
// into the page can never run as code, even if the page had a bug.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// assets are the embedded files by name, read once.
var assets = sync.OnceValue(func() map[string]*asset {
	m := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "static/")
		m[name] = &asset{name: name, body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("dashboard: embedded files: " + err.Error()) // cannot happen: the files are in the binary
	}
	return m
})

// Handler serves the dashboard: GET / is the page and GET /ui/NAME its
// scripts and styles. Anything else is 404 (405 for methods other than GET
// and HEAD).
//
// The files carry an ETag and Cache-Control: no-cache, so a browser
// revalidates them on each load (a 304 when unchanged) and never runs the
// UI of an older appliance version after an upgrade.
func Handler() http.Handler {
	files := assets()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a *asset
		if r.URL.Path == "/" {
			a = files["index.html"]
		} else if name, ok := strings.CutPrefix(r.URL.Path, "/ui/"); ok && !strings.Contains(name, "/") {
			a = files[name]
		}
		if a == nil {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
	})
}
