package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"

	"moobi/bootsign"
	"moobi/boottoken"
	"moobi/nodeapi"
)

// GetBootConfig asks the appliance for the node's boot config and checks
// it: its signature must verify with o.PublicKey (unless o.AllowUnsigned
// and no key), it must be well formed, and answer this request (see
// checkAnswers). The torrent it names is checked against its infohash later
// (getTorrent), so a server without the appliance's key cannot make the
// node download anything.
func GetBootConfig(ctx context.Context, o Options) (nodeapi.BootConfig, error) {
	o.defaults()
	u := o.Server + "/v1/nodes/" + o.MAC.String() + "/boot"
	if o.Version != "" {
		u += "?version=" + url.QueryEscape(o.Version)
	}
	if o.PublicKey == nil && !o.AllowUnsigned {
		return nodeapi.BootConfig{}, fmt.Errorf("boot config from %s: no public key to verify its signature with", u)
	}
	nonce, err := newNonce()
	if err != nil {
		return nodeapi.BootConfig{}, fmt.Errorf("boot config: %w", err)
	}
	body, hdr, err := getWithHeader(ctx, o.HTTP, u, 1<<20, nodeapi.NonceHeader, nonce)
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
	if err := checkAnswers(cfg, o, nonce); err != nil {
		return nodeapi.BootConfig{}, fmt.Errorf("boot config from %s %w", u, err)
	}
	return cfg, nil
}

// checkAnswers checks that a signed config answers this node's request in
// this boot: its MAC, the nonce the node just sent, the node's boot token,
// and the version the node asked for (the one its kernel was booted for)
// must all be the node's. A config signed for another request and replayed
// (an older version's, to downgrade the node) fails one of them.
func checkAnswers(cfg nodeapi.BootConfig, o Options, nonce string) error {
	switch {
	case cfg.MAC != o.MAC.String():
		return fmt.Errorf("is for MAC %q, not this node's %s", cfg.MAC, o.MAC)
	case cfg.Nonce != nonce:
		return fmt.Errorf("answers nonce %q, not this request's %s: a signed config of another request, replayed", cfg.Nonce, nonce)
	case cfg.Boot != o.BootToken:
		return fmt.Errorf("is for boot token %q, not this boot's %q: a signed config of another boot, replayed", cfg.Boot, o.BootToken)
	case o.Version != "" && cfg.Version != o.Version:
		return fmt.Errorf("is for version %q, but this node asked for %q (the version its kernel was booted for)", cfg.Version, o.Version)
	}
	return nil
}

// newNonce returns 16 random bytes in hex from crypto/rand. Linux's
// getrandom blocks only until the kernel's random pool is first
// initialized; kernels since 5.4 do that within about a second even on a
// VM with no RNG device.
func newNonce() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// tokenTransport adds the node's boot token to every request to the
// appliance (host), and to no other.
type tokenTransport struct {
	rt    http.RoundTripper
	host  string
	token string
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == t.host {
		r = r.Clone(r.Context())
		r.Header.Set(boottoken.Header, t.token)
	}
	return t.rt.RoundTrip(r)
}

// withToken returns c, or a copy of it that sends token to server's host.
func withToken(c *http.Client, server, token string) *http.Client {
	u, err := url.Parse(server)
	if token == "" || err != nil {
		return c
	}
	if _, done := c.Transport.(tokenTransport); done {
		return c
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cp := *c
	cp.Transport = tokenTransport{rt: rt, host: u.Host, token: token}
	return &cp
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

// getWithHeader GETs u, with request headers hdr (name, value, ...), and
// returns a body of at most limit bytes and the response's header.
func getWithHeader(ctx context.Context, c *http.Client, u string, limit int64, hdr ...string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
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

// ScriptToken fetches the node's iPXE boot script from the appliance, as
// iPXE does, and returns the boot token it sets (moobi.boot=): for
// user-space tools that fetch an image without booting.
func ScriptToken(ctx context.Context, o Options) (string, error) {
	o.defaults()
	u := o.Server + "/boot/" + o.MAC.String() + ".ipxe"
	b, err := get(ctx, o.HTTP, u, 64<<10)
	if err != nil {
		return "", fmt.Errorf("boot script: %w", err)
	}
	tok := boottoken.FromCmdline(string(b))
	if tok == "" {
		return "", fmt.Errorf("boot script %s sets no %s=", u, boottoken.CmdlineParam)
	}
	return tok, nil
}
