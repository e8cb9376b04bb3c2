package fetch

import (
	"context"
	"fmt"

	"moobi/nodeapi"
	"moobi/overlay"
)

// GetOverlay fetches the node's overlay that the verified boot config pins
// and checks it against the config's digest: an overlay a server without
// the appliance's key made up is refused.
func GetOverlay(ctx context.Context, o Options, ref nodeapi.OverlayRef) ([]byte, error) {
	o.defaults()
	b, err := get(ctx, o.HTTP, ref.URL, nodeapi.MaxOverlayBytes)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	if int64(len(b)) != ref.Size {
		return nil, fmt.Errorf("overlay from %s: %d bytes, the boot config pins %d", ref.URL, len(b), ref.Size)
	}
	if err := overlay.Verify(b, ref.SHA256); err != nil {
		return nil, fmt.Errorf("overlay from %s: %w", ref.URL, err)
	}
	return b, nil
}
