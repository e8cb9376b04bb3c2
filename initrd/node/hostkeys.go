package node

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
)

// hostKeyNames are the SSH host keys a node has: made on the node, never
// by the appliance (they would cross the boot VLAN in clear) and never
// taken from the image (every node of the image would share them).
var hostKeyNames = []string{"ssh_host_ed25519_key", "ssh_host_ecdsa_key"}

// newHostKeys makes a fresh set of host keys, as OpenSSH private keys.
func newHostKeys(comment string) (map[string]string, error) {
	keys := map[string]string{}
	for _, name := range hostKeyNames {
		var priv any
		var err error
		switch name {
		case "ssh_host_ed25519_key":
			_, priv, err = ed25519.GenerateKey(rand.Reader)
		case "ssh_host_ecdsa_key":
			priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err != nil {
			return nil, fmt.Errorf("SSH host key %s: %w", name, err)
		}
		blk, err := ssh.MarshalPrivateKey(priv, comment)
		if err != nil {
			return nil, fmt.Errorf("SSH host key %s: %w", name, err)
		}
		keys[name] = string(pem.EncodeToMemory(blk))
	}
	return keys, nil
}

// usableHostKeys reports whether keys holds a parsable key of every name.
func usableHostKeys(keys map[string]string) bool {
	for _, name := range hostKeyNames {
		if _, err := ssh.ParsePrivateKey([]byte(keys[name])); err != nil {
			return false
		}
	}
	return true
}

// installHostKeys removes every SSH host key the image carries under
// root/etc/ssh and writes keys (private 0600, public 0644). It returns the
// SHA256 fingerprints, for the console.
func installHostKeys(root string, keys map[string]string, comment string) ([]string, error) {
	dir := filepath.Join(root, "etc/ssh")
	old, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return nil, fmt.Errorf("remove the image's host key %s: %w", f, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var fps []string
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		signer, err := ssh.ParsePrivateKey([]byte(keys[name]))
		if err != nil {
			return nil, fmt.Errorf("SSH host key %s: %w", name, err)
		}
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(keys[name]), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".pub"), []byte(pub), 0o644); err != nil {
			return nil, err
		}
		fps = append(fps, ssh.FingerprintSHA256(signer.PublicKey())+" ("+signer.PublicKey().Type()+")")
	}
	return fps, nil
}
