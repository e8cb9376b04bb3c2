package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"moobi/power"
	"moobi/power/fleet"
)

// PowerRunner runs power actions on the hosts targets name (fleet.Runner).
type PowerRunner interface {
	Run(ctx context.Context, action power.Action, targets []string) ([]fleet.Result, error)
}

// PowerRequest is the body of POST /v1/power.
type PowerRequest struct {
	Action  string   `json:"action"`
	Targets []string `json:"targets"`
}

// PowerResponse is the answer of GET and POST /v1/power.
type PowerResponse struct {
	Results []fleet.Result `json:"results"`
	OK      int            `json:"ok"`
	Failed  int            `json:"failed"`
}

// powerRoutes adds /v1/power, behind the admin guard: even reading the
// power state logs in to every BMC.
func (s *Server) powerRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/power", s.Admin(http.HandlerFunc(s.getPower)))
	mux.Handle("POST /v1/power", s.Admin(http.HandlerFunc(s.postPower)))
}

func (s *Server) getPower(w http.ResponseWriter, r *http.Request) {
	if len(s.Inventory().HostsWithBMC()) == 0 {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(PowerResponse{Results: []fleet.Result{}})
		return
	}
	s.runPower(w, r, power.ActionStatus, []string{"all"})
}

func (s *Server) postPower(w http.ResponseWriter, r *http.Request) {
	var req PowerRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad request: want {\"action\": \"status|on|off|cycle|pxe\", \"targets\": [...]}: "+err.Error(), http.StatusBadRequest)
		return
	}
	action, err := power.ParseAction(req.Action)
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.runPower(w, r, action, req.Targets)
}

func (s *Server) runPower(w http.ResponseWriter, r *http.Request, action power.Action, targets []string) {
	ctx := r.Context()
	if action != power.ActionStatus {
		// A client that hangs up does not leave hosts half done (a PXE
		// boot flag set, the host not cycled): every call is bounded anyway.
		ctx = context.WithoutCancel(ctx)
	}
	res, err := s.Power.Run(ctx, action, targets)
	if err != nil {
		code, msg := powerError(err)
		if code == http.StatusInternalServerError {
			s.Log.Error("power action failed", "action", string(action), "err", err)
		}
		http.Error(w, msg, code)
		return
	}
	out := PowerResponse{Results: res}
	if out.Results == nil {
		out.Results = []fleet.Result{}
	}
	for _, x := range res {
		if x.OK {
			out.OK++
		} else {
			out.Failed++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// powerError is the status and body of a power request whose run failed:
// targets that name no usable host are the request's fault (400), a
// request that ended before the run did is 503, anything else the
// service's own failure (500).
func powerError(err error) (int, string) {
	var te *power.TargetError
	switch {
	case errors.As(err, &te):
		return http.StatusBadRequest, "bad request: " + err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "power action not done: the request ended first: " + err.Error()
	}
	return http.StatusInternalServerError, "power action failed: " + err.Error()
}
