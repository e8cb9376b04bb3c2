// Package catalog is the appliance's on-disk catalog of OS images: the
// kernels, squashfs root filesystems and kernel-module archives that Moobi
// publishes and then distributes to racks over BitTorrent (with the appliance's
// HTTP server as a BEP 19 web seed).
//
// Layout under the root folder (the appliance passes data_dir/images):
//
//	ROOT/NAME/VERSION/kernel          the image's kernel (bzImage)
//	ROOT/NAME/VERSION/rootfs          the root filesystem, a squashfs file
//	ROOT/NAME/VERSION/modules         boot-time kernel modules, a gzip'd newc cpio (optional)
//	ROOT/NAME/VERSION/rootfs.torrent  a single-file, private torrent of rootfs (info name "rootfs")
//	ROOT/NAME/VERSION/manifest.json   a Manifest: sizes, sha256 sums, infohash
//	ROOT/NAME/current -> VERSION      symlink: the current version
//
// A version folder, once visible under its name, is complete and never
// changes; it only disappears when pruned. Names beginning with "." inside
// ROOT/NAME are private to the catalog (work in progress, or leftovers of a
// crash that Open removes) and readers never look at them.
//
// # Publishing and crash safety
//
// Publish writes and fsyncs every file into a temporary folder
// ROOT/NAME/.incoming-*, fsyncs that folder, renames it to ROOT/NAME/VERSION,
// fsyncs ROOT/NAME, then switches "current" in one step by renaming a
// temporary symlink (ROOT/NAME/.current-*) over it, fsyncs ROOT/NAME again and
// finally prunes old versions (renamed to ROOT/NAME/.deleting-* first, so that
// a half-deleted version is never visible). Whatever instant the process (or
// the machine) dies at, "current" names either the old or the new version, and
// both are complete.
//
// Publishes of one image are serialised with flock(2) on the ROOT/NAME folder,
// across processes too; Open skips cleaning an image whose lock is held.
//
// # Crash injection
//
// For tests, if the environment variable MOOBI_CRASH_POINT equals the name of
// one of the steps below, the process kills itself with SIGKILL when Publish
// reaches that step, which simulates a power loss as far as the process can
// tell (the page cache survives, so fsync ordering itself is not exercised):
//
//	copied     kernel, rootfs and modules copied into .incoming-* and fsynced
//	torrent    rootfs.torrent written and fsynced
//	manifest   manifest.json written, .incoming-* folder fsynced
//	renamed    .incoming-* renamed to VERSION, ROOT/NAME fsynced; current is still the old version
//	symlinked  temporary symlink .current-* created, not yet renamed over current
//	switched   current renamed to point at VERSION, ROOT/NAME fsynced
//	pruned     old versions beyond Keep removed
//
// CrashPoints lists them in that order.
package catalog
