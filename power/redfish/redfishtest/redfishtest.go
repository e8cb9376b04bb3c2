// Package redfishtest is a small Redfish service for tests: it serves
// DMTF's published mockup public-rackmount1 (its service root, its systems
// collection and its one ComputerSystem, in testdata/, unchanged; see
// testdata/public-rackmount1/SOURCE.md) and applies what a BMC applies to
// a Machine: ComputerSystem.Reset (On, ForceOn, ForceOff, ForceRestart,
// PowerCycle) and PATCHes of Boot.BootSourceOverrideTarget and
// BootSourceOverrideEnabled. The mockup's data is DMTF's; the state kept
// (PowerState from the machine, the boot override, starting at None) and
// the handling of requests are ours. Everything but the service root needs
// HTTP basic authentication.
package redfishtest

import (
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// DMTF's mockup documents.
var (
	//go:embed testdata/public-rackmount1/service-root.json
	serviceRoot []byte
	//go:embed testdata/public-rackmount1/systems.json
	systems []byte
	//go:embed testdata/public-rackmount1/system.json
	system []byte
)

// SystemPath is the mockup system's URL path.
const SystemPath = "/redfish/v1/Systems/437XR1138R2"

// Machine is what the service powers.
type Machine interface {
	// On starts the machine, from the network if pxe.
	On(pxe bool) error
	// Off stops it at once.
	Off() error
	Running() bool
}

// Server is the Redfish service.
type Server struct {
	User, Password string
	Machine        Machine

	mu      sync.Mutex
	target  string // BootSourceOverrideTarget
	enabled string // BootSourceOverrideEnabled
	// Requests records "METHOD PATH BODY" of every authenticated request
	// that changed something, for tests to read.
	requests []string
}

// New returns a service for m with one account.
func New(user, password string, m Machine) *Server {
	return &Server{User: user, Password: password, Machine: m, target: "None", enabled: "Disabled"}
}

// Requests returns the changes asked so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Override returns the boot override in force.
func (s *Server) Override() (target, enabled string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target, s.enabled
}

// Handler serves the service.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	root := func(w http.ResponseWriter, r *http.Request) { writeJSON(w, serviceRoot) }
	mux.HandleFunc("GET /redfish/v1/{$}", root)
	mux.HandleFunc("GET /redfish/v1", root)
	mux.Handle("GET /redfish/v1/Systems", s.auth(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, systems) }))
	mux.Handle("GET "+SystemPath, s.auth(s.getSystem))
	mux.Handle("PATCH "+SystemPath, s.auth(s.patchSystem))
	mux.Handle("POST "+SystemPath+"/Actions/ComputerSystem.Reset", s.auth(s.reset))
	return mux
}

func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.User)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="redfish"`)
			http.Error(w, `{"error":{"code":"Base.1.0.NoValidSession","message":"authentication required"}}`, http.StatusUnauthorized)
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// getSystem is DMTF's system document with our PowerState and Boot override.
func (s *Server) getSystem(w http.ResponseWriter, r *http.Request) {
	var doc map[string]any
	if err := json.Unmarshal(system, &doc); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	doc["PowerState"] = "Off"
	if s.Machine.Running() {
		doc["PowerState"] = "On"
	}
	boot, _ := doc["Boot"].(map[string]any)
	boot["BootSourceOverrideTarget"] = s.target
	boot["BootSourceOverrideEnabled"] = s.enabled
	s.mu.Unlock()
	b, _ := json.Marshal(doc)
	writeJSON(w, b)
}

func (s *Server) patchSystem(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Boot *struct {
			BootSourceOverrideTarget  string
			BootSourceOverrideEnabled string
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Boot == nil {
		http.Error(w, "want a Boot object", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := req.Boot.BootSourceOverrideTarget; t != "" {
		s.target = t
	}
	if e := req.Boot.BootSourceOverrideEnabled; e != "" {
		s.enabled = e
	}
	s.requests = append(s.requests, fmt.Sprintf("PATCH Boot %s %s", s.target, s.enabled))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	var req struct{ ResetType string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "want a ResetType", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, "Reset "+req.ResetType)
	var err error
	switch req.ResetType {
	case "On", "ForceOn":
		if !s.Machine.Running() {
			err = s.on()
		}
	case "ForceOff":
		err = s.Machine.Off()
	case "ForceRestart", "PowerCycle":
		if err = s.Machine.Off(); err == nil {
			err = s.on()
		}
	default:
		http.Error(w, "unsupported ResetType "+req.ResetType, http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// on starts the machine, consuming a one-time boot override.
func (s *Server) on() error {
	pxe := s.target == "Pxe" && s.enabled != "Disabled"
	if s.enabled == "Once" {
		s.target, s.enabled = "None", "Disabled"
	}
	return s.Machine.On(pxe)
}
