package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"

	"moobi/bootsign"
	"moobi/nodeapi"
)

// GetBootConfig asks the appliance for the node's boot config and checks
// it: its signature must verify with o.PublicKey (unless o.AllowUnsigned
// and no key), it must be well formed, and be this node's. The torrent it
// names is checked against its infohash later (getTorrent), so a server
// without the appliance's key cannot make the node download anything.
func GetBootConfig(ctx context.Context, o Options) (nodeapi.BootConfig, error) {
	o.defaults()
	u := o.Server + "/v1/nodes/" + o.MAC.String() + "/boot"
	if o.Version != "" {
		u += "?version=" + url.QueryEscape(o.Version)
	}
	if o.PublicKey == nil && !o.AllowUnsigned {
		return nodeapi.BootConfig{}, fmt.Errorf("boot config from %s: no public key to verify its signature with", u)
	}
	body, hdr, err := getWithHeader(ctx, o.HTTP, u, 1<<20)
	if err != nil {
		return nodeapi.BootConfig{}, fmt.Errorf("boot config: %w", err)
	}
	if o.PublicKey != nil {
		if err := bootsign.Verify(o.PublicKey, body, hdr.Get(bootsign.Header)); err != nil {
			if errors.Is(err, bootsign.ErrUnknownKey) || errors.Is(err, bootsign.ErrBadSignature) {
				return nodeapi.BootConfig{}, fmt.Errorf("boot config from %s: %w: a server that does not hold the appliance's signing key answered", u, err)
			}
			return nodeapi.BootConfig{}, fmt.Errorf("boot config from %s: %w: this node boots only boot configs signed with key ID %s", u, err, bootsign.KeyID(o.PublicKey))
		}
	}
	cfg, err := nodeapi.DecodeBootConfig(body)
	if err != nil {
		return nodeapi.BootConfig{}, fmt.Errorf("%s: %w", u, err)
	}
	if cfg.MAC != o.MAC.String() {
		return nodeapi.BootConfig{}, fmt.Errorf("boot config from %s is for MAC %q, not this node's %s", u, cfg.MAC, o.MAC)
	}
	return cfg, nil
}

// Report posts an event to the appliance. Failures are logged, not
// returned: a node keeps booting when the appliance cannot hear it.
func Report(ctx context.Context, o Options, e nodeapi.Event) {
	o.defaults()
	if err := report(ctx, o, e); err != nil {
		o.Log.Warn("cannot report event", "state", e.State, "err", err)
	}
}

// errRefused marks an event the appliance answered and refused: sending it
// again would not help.
var errRefused = errors.New("event refused")

// report posts an event to the appliance once.
func report(ctx context.Context, o Options, e nodeapi.Event) error {
	b, _ := json.Marshal(e)
	u := o.Server + "/v1/nodes/" + o.MAC.String() + "/events"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %v", errRefused, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 5:
		return fmt.Errorf("POST %s: %s", u, resp.Status)
	default:
		return fmt.Errorf("%w: POST %s: %s", errRefused, u, resp.Status)
	}
}

func get(ctx context.Context, c *http.Client, u string, limit int64) ([]byte, error) {
	b, _, err := getWithHeader(ctx, c, u, limit)
	return b, err
}

// getWithHeader GETs u and returns a body of at most limit bytes and the
// response's header.
func getWithHeader(ctx context.Context, c *http.Client, u string, limit int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(msg))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, nil, fmt.Errorf("GET %s: response larger than %d bytes", u, limit)
	}
	return b, resp.Header, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// countingTransport counts response body bytes: the web seed's traffic.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err == nil {
		resp.Body = countingBody{resp.Body, c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
