// Package rootfs unpacks the root filesystem of an image, from a tarball or
// an OCI image (a layout folder, an OCI archive or a `docker save` archive),
// safely into a staging folder: no entry lands outside it, no link is
// followed out of it, no device node is made outside /dev (those under /dev
// are skipped: the node mounts devtmpfs there).
package rootfs

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrUnsafe is wrapped by the errors for entries that would write outside
// the root or make what a root must not hold.
var ErrUnsafe = errors.New("unsafe entry")

// CleanName returns the tar entry name name as a clean slash-separated path
// relative to the root ("." for the root itself): a leading "./" is dropped,
// repeated and trailing slashes are folded. It refuses (wrapping ErrUnsafe)
// an absolute name, a name with a ".." element, an empty name and one
// holding a NUL byte.
func CleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty name", ErrUnsafe)
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: %q holds a NUL byte", ErrUnsafe, name)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: %q is an absolute path", ErrUnsafe, name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: %q climbs out of the root with \"..\"", ErrUnsafe, name)
		}
	}
	return path.Clean(name), nil
}

// underDev reports whether the clean relative path rel is beneath dev/
// (not dev itself).
func underDev(rel string) bool { return strings.HasPrefix(rel, "dev/") }
