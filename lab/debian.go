package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DebianSuite and DebianPackages are the Debian server image's recipe (the
// one docs/images.md gives operators): a minimal Debian 12 with systemd,
// udev, D-Bus, an SSH server, iproute2 and Debian's cloud kernel, with
// systemd-networkd enabled to keep the boot NIC's lease.
const DebianSuite = "bookworm"

// DebianPackages are the --include of the recipe.
var DebianPackages = []string{"systemd-sysv", "udev", "dbus", "systemd-timesyncd", "openssh-server", "iproute2",
	"linux-image-cloud-amd64", "zstd", "ca-certificates"}

// DebianCustomizeHook is the recipe's --customize-hook.
const DebianCustomizeHook = `chroot "$1" systemctl enable systemd-networkd`

// DebianRecipe is the mmdebstrap command line that writes the root
// filesystem tarball out.
func DebianRecipe(out string) []string {
	return []string{"mmdebstrap", "--variant=minbase", "--include=" + strings.Join(DebianPackages, ","),
		"--customize-hook=" + DebianCustomizeHook, DebianSuite, out}
}

// DebianRootfs returns cacheDir/debian12-rootfs.tar, a Debian 12 server
// root filesystem built by DebianRecipe with mmdebstrap from the machine's
// apt sources (about 90 s and 370 MB), building it first when it is
// missing or was built from another recipe. Concurrent callers, also in
// other processes, share one build (flock, temp file and rename).
func DebianRootfs(ctx context.Context, cacheDir string) (string, error) {
	out := filepath.Join(cacheDir, "debian12-rootfs.tar")
	stamp := out + ".recipe"
	sum := sha256.Sum256([]byte(strings.Join(DebianRecipe(""), "\x00")))
	want := hex.EncodeToString(sum[:])
	fresh := func() bool {
		b, err := os.ReadFile(stamp)
		_, serr := os.Stat(out)
		return err == nil && serr == nil && strings.TrimSpace(string(b)) == want
	}
	if fresh() {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, ".debian.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if fresh() {
		return out, nil
	}
	tmp := out + ".tmp.tar"
	os.Remove(tmp)
	args := DebianRecipe(tmp)
	if err := run(ctx, cacheDir, args[0], args[1:]...); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("lab: building the Debian root filesystem: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"), 0o644); err != nil {
		return "", err
	}
	return out, nil
}
