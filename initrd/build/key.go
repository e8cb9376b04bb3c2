package build

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"

	"moobi/bootsign"
)

// KeyArchive is a gzip'd newc cpio archive that holds pub, as a PEM public
// key file (mode 0644), at bootsign.InitramfsPath, with its parent folders
// (mode 0755). The same key always gives the same bytes.
func KeyArchive(pub ed25519.PublicKey) ([]byte, error) {
	pem, err := bootsign.MarshalPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("key archive: %w", err)
	}
	name := strings.TrimPrefix(bootsign.InitramfsPath, "/")
	var recs []cpio.Record
	// The kernel does not create missing parent folders: list them first.
	for i, c := range name {
		if c == '/' {
			recs = append(recs, cpio.Directory(name[:i], 0o755))
		}
	}
	recs = append(recs, cpio.StaticFile(name, string(pem), 0o644))
	for i := range recs {
		recs[i].Ino = uint64(i + 1)
		recs[i].NLink = 1
		if recs[i].Mode&cpio.S_IFMT == cpio.S_IFDIR {
			recs[i].NLink = 2
		}
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w := cpio.Newc.Writer(zw)
	if err := cpio.WriteRecords(w, recs); err != nil {
		return nil, fmt.Errorf("key archive: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("key archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("key archive: %w", err)
	}
	return buf.Bytes(), nil
}

// WithKey writes to out the gzip'd base initramfs at base followed by
// KeyArchive(pub): a node initramfs that trusts boot configs signed with
// pub's private key. The file appears whole or not at all.
func WithKey(base string, pub ed25519.PublicKey, out string) error {
	key, err := KeyArchive(pub)
	if err != nil {
		return err
	}
	in, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("base initramfs: %w", err)
	}
	defer in.Close()
	magic := make([]byte, 2)
	if _, err := io.ReadFull(in, magic); err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return fmt.Errorf("base initramfs %s is not gzip'd (build it with moobi initrd build --base-only)", base)
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("base initramfs: %w", err)
	}
	return writeAtomic(out, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copy base initramfs %s: %w", base, err)
		}
		_, err := w.Write(key)
		return err
	})
}

// writeAtomic writes out through fill into out.part, syncs it and renames
// it to out; on failure nothing is left behind.
func writeAtomic(out string, fill func(io.Writer) error) error {
	part := out + ".part"
	f, err := os.Create(part)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, out)
	}
	if err != nil {
		os.Remove(part)
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
