package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"

	"moobi/bootsign"
)

// LoadKey reads the appliance's boot signing public key, which `moobi
// initrd build` puts in the initramfs at bootsign.InitramfsPath. Without
// it the node cannot tell the appliance from any other server, and must
// not boot: the error says so and how to fix it.
func LoadKey(path string) (ed25519.PublicKey, error) {
	pub, err := bootsign.LoadPublicKey(path)
	if err != nil {
		return nil, fmt.Errorf("refusing to boot: this initramfs has no usable boot signing key (%w): "+
			"build it with `moobi initrd build --config hosts.yaml`, which adds the appliance's public key", err)
	}
	return pub, nil
}

// answered reports whether a boot config request failed after a server
// answered it (a refused signature, a bad config, an HTTP error status),
// rather than in transport: only then is a failed event worth sending.
func answered(err error) bool {
	var ue *url.Error
	return err != nil && !errors.As(err, &ue)
}
