package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"moobi/nodeapi"
	"moobi/overlay"
)

// identityResult is what applyIdentity did, for the console and the
// appliance.
type identityResult struct {
	Entries      int      // overlay entries written
	Fingerprints []string // SSH host key fingerprints
	KeysKept     bool     // the host keys came from the cache device's state area
	StateErr     error    // why the state area could not be used (nil: fine or RAM node)
}

// applyIdentity gives the mounted image at root its node's identity: the
// overlay the boot config pinned (already verified), then SSH host keys —
// the ones kept in the cache device's state area when it holds this host's,
// else fresh ones, saved there for the next boot. A RAM node (dev "") keeps
// nothing: it gets fresh keys every boot.
func applyIdentity(log *slog.Logger, root string, cfg nodeapi.BootConfig, ov []byte, ifname, dev string, devSize int64) (identityResult, error) {
	var res identityResult
	if ov != nil {
		n, err := overlay.Apply(root, ov)
		if err != nil {
			return res, err
		}
		res.Entries = n
	}
	if ifname != "" {
		if err := writeLinkFile(root, cfg.MAC, ifname); err != nil {
			return res, err
		}
	}
	comment := "root@" + cfg.Name
	var keys map[string]string
	var st State
	if dev != "" {
		var err error
		st, err = ReadState(dev, devSize)
		switch {
		case err == nil && st.Host == cfg.Name && st.MAC == cfg.MAC && usableHostKeys(st.HostKeys):
			keys, res.KeysKept = st.HostKeys, true
		case err == nil:
			log.Warn("the cache device's state belongs to another host; starting afresh", "state_host", st.Host, "state_mac", st.MAC)
		case errors.Is(err, ErrNoState):
		default:
			res.StateErr = err
		}
	}
	if keys == nil {
		var err error
		if keys, err = newHostKeys(comment); err != nil {
			return res, err
		}
		if dev != "" && res.StateErr == nil {
			st = State{Host: cfg.Name, MAC: cfg.MAC, HostKeys: keys}
			if err := WriteState(dev, devSize, st); err != nil {
				res.StateErr = err
			}
		}
	}
	fps, err := installHostKeys(root, keys, comment)
	if err != nil {
		return res, err
	}
	res.Fingerprints = fps
	return res, nil
}

// isSystemd reports whether init, as the image at root resolves it
// (following symlinks inside root), is systemd.
func isSystemd(root, init string) bool {
	p := init
	for range 16 {
		target, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			break
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	if _, err := os.Stat(filepath.Join(root, p)); err != nil {
		return false
	}
	return path.Base(p) == "systemd"
}

// describeIdentity is the console line for res.
func describeIdentity(res identityResult) string {
	keys := "new SSH host keys"
	if res.KeysKept {
		keys = "SSH host keys kept from the cache device"
	}
	s := fmt.Sprintf("overlay: %d entries; %s: %s", res.Entries, keys, strings.Join(res.Fingerprints, ", "))
	if res.StateErr != nil {
		s += fmt.Sprintf(" (state area unusable: %v)", res.StateErr)
	}
	return s
}

// LinkFile is where the node pins its boot NIC's name for udev.
const LinkFile = "etc/systemd/network/10-moobi-boot.link"

// writeLinkFile keeps the boot NIC's name in the booted system: the NIC is
// up (and in use by the seeder) when the image's udev first sees it, and
// udev cannot rename an interface that is up to its "predictable" name;
// the failed rename leaves the link uninitialized, and systemd-networkd
// then never takes it over (no lease renewal). Naming it what it already
// is makes the rename a no-op. An operator's overlay may ship its own.
func writeLinkFile(root, mac, ifname string) error {
	p := filepath.Join(root, LinkFile)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	body := fmt.Sprintf("# Written by the Moobi node: the boot NIC keeps the name it booted with.\n[Match]\nMACAddress=%s\n\n[Link]\nName=%s\n", mac, ifname)
	return os.WriteFile(p, []byte(body), 0o644)
}
