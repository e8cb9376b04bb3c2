package httpd

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"moobi/inventory"
	"moobi/rollout"
)

// Rollouts is the rollout service (rollout.Runner).
type Rollouts interface {
	List() []rollout.Rollout
	Get(id string) (rollout.Rollout, error)
	Start(req rollout.Request) (rollout.Rollout, error)
	Control(id string, f func(rollout.Rollout, time.Time) (rollout.Rollout, error)) (rollout.Rollout, error)
	Pin(host string) (rollout.Pin, bool)
	PinList() []rollout.HostPin
	Unpin(req rollout.UnpinRequest) ([]rollout.HostPin, error)
}

// RolloutList is the answer of GET /v1/rollouts.
type RolloutList struct {
	Rollouts []rollout.Rollout `json:"rollouts"`
}

// PinList is the answer of GET /v1/pins: every host's pin, by host name.
type PinList struct {
	Pins []rollout.HostPin `json:"pins"`
}

// Unpinned is the answer of POST /v1/pins/unpin: the pins removed.
type Unpinned struct {
	Unpinned []rollout.HostPin `json:"unpinned"`
}

// rolloutReadRoutes adds GET /v1/rollouts, /v1/rollouts/{id} and
// /v1/pins behind wrap (the read-only views' rule).
func (s *Server) rolloutReadRoutes(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.Handle("GET /v1/rollouts", wrap(http.HandlerFunc(s.listRollouts)))
	mux.Handle("GET /v1/rollouts/{id}", wrap(http.HandlerFunc(s.getRollout)))
	mux.Handle("GET /v1/pins", wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeRolloutJSON(w, http.StatusOK, PinList{Pins: s.Rollouts.PinList()})
	})))
}

// rolloutRoutes adds the rollout controls, behind the admin guard; with
// the read-only views elsewhere, the boot network's port also answers the
// reads to the admin token, as /v1/power does.
func (s *Server) rolloutRoutes(mux *http.ServeMux) {
	mux.Handle("POST /v1/rollouts", s.Admin(http.HandlerFunc(s.startRollout)))
	mux.Handle("POST /v1/pins/unpin", s.Admin(http.HandlerFunc(s.unpin)))
	for _, c := range []struct {
		name string
		f    func(rollout.Rollout, time.Time) (rollout.Rollout, error)
	}{{"pause", rollout.Pause}, {"resume", rollout.Resume}, {"abort", rollout.Abort}} {
		mux.Handle("POST /v1/rollouts/{id}/"+c.name, s.Admin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ro, err := s.Rollouts.Control(r.PathValue("id"), c.f)
			if err != nil {
				s.rolloutError(w, err)
				return
			}
			writeRolloutJSON(w, http.StatusOK, ro)
		})))
	}
	if s.AdminElsewhere {
		s.rolloutReadRoutes(mux, s.Admin)
	}
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) {
	writeRolloutJSON(w, http.StatusOK, RolloutList{Rollouts: s.Rollouts.List()})
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) {
	ro, err := s.Rollouts.Get(r.PathValue("id"))
	if err != nil {
		s.rolloutError(w, err)
		return
	}
	writeRolloutJSON(w, http.StatusOK, ro)
}

func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) {
	var req rollout.Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, `bad request: want {"image": "NAME", "version": "V", "targets": [...], "batch_size": N, "max_failures": N, "batch_timeout": "20m", "accept_degraded": false, "make_current": false, "dry_run": false}: `+err.Error(), http.StatusBadRequest)
		return
	}
	ro, err := s.Rollouts.Start(req)
	if err != nil {
		s.rolloutError(w, err)
		return
	}
	code := http.StatusCreated
	if req.DryRun {
		code = http.StatusOK
	}
	writeRolloutJSON(w, code, ro)
}

func (s *Server) unpin(w http.ResponseWriter, r *http.Request) {
	var req rollout.UnpinRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, `bad request: want {"hosts": ["NAME", ...]} or {"all": true}: `+err.Error(), http.StatusBadRequest)
		return
	}
	removed, err := s.Rollouts.Unpin(req)
	if err != nil {
		s.rolloutError(w, err)
		return
	}
	writeRolloutJSON(w, http.StatusOK, Unpinned{Unpinned: removed})
}

// rolloutError answers a failed rollout request: 400 for a bad request,
// 404 for an unknown rollout, 409 for hosts held by another rollout or a
// control its state does not allow, 500 (logged) for anything else.
func (s *Server) rolloutError(w http.ResponseWriter, err error) {
	var re *rollout.RequestError
	var ce *rollout.ConflictError
	switch {
	case errors.As(err, &re):
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
	case errors.Is(err, rollout.ErrNotFound):
		http.Error(w, "not found: "+err.Error(), http.StatusNotFound)
	case errors.As(err, &ce), errors.Is(err, rollout.ErrState):
		http.Error(w, "conflict: "+err.Error(), http.StatusConflict)
	default:
		s.Log.Error("rollout request failed", "err", err)
		http.Error(w, "rollout request failed: "+err.Error(), http.StatusInternalServerError)
	}
}

func writeRolloutJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// BootVersion is the version of its profile's image a host boots: the one
// its boot script named (asked, so that a node fetches what its kernel
// came with), else the version it is pinned to if the pin is for that
// image, else "" (the image's current version).
func BootVersion(image, asked string, pin rollout.Pin, pinned bool) string {
	if asked != "" {
		return asked
	}
	if pinned && pin.Image == image {
		return pin.Version
	}
	return ""
}

// bootVersion is BootVersion with the host's pin.
func (s *Server) bootVersion(h *inventory.Host, p *inventory.Profile, asked string) string {
	if s.Rollouts == nil {
		return asked
	}
	pin, ok := s.Rollouts.Pin(h.Name)
	return BootVersion(p.Image, asked, pin, ok)
}

// pinnedVersion is the version a boot script names: the host's pin, else
// "" (current).
func (s *Server) pinnedVersion(h *inventory.Host, p *inventory.Profile) string {
	return s.bootVersion(h, p, "")
}
