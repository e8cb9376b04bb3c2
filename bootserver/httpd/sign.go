package httpd

import (
	"encoding/json"
	"net/http"
	"strconv"

	"moobi/bootsign"
	"moobi/nodeapi"
)

// Signer signs boot config bodies: Sign returns the value of the
// bootsign.Header that carries the signature of body. *bootsign.Signer is
// one.
type Signer interface {
	Sign(body []byte) string
}

// writeBootConfig sends a boot config, signed when the server has a Signer.
// It is rendered into a buffer first: the body sent is byte for byte the
// body signed.
func (s *Server) writeBootConfig(w http.ResponseWriter, cfg nodeapi.BootConfig) {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		s.Log.Error("render boot config", "mac", cfg.MAC, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	body := append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	if s.Signer != nil {
		h.Set(bootsign.Header, s.Signer.Sign(body))
	}
	w.Write(body)
}
