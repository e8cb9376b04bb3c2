package catalog

import (
	"fmt"
	"io"
	"strings"
)

// cpioWriter writes a "newc" (SVR4, no CRC) cpio archive as the Linux kernel
// reads for an initramfs. Entries are written as given; every entry has
// mtime 0, uid and gid 0, and inode numbers counting from 1, so the same
// entries in the same order always give the same bytes.
type cpioWriter struct {
	w   io.Writer
	ino uint32
}

const (
	cpioModeDir  = 0o040755
	cpioModeFile = 0o100644
	cpioTrailer  = "TRAILER!!!"
	cpioMaxSize  = 1<<32 - 1
)

var cpioPad [4]byte

// header writes an entry header and its name, padded to 4 bytes.
func (cw *cpioWriter) header(name string, mode, nlink uint32, size int64) error {
	if size < 0 || size > cpioMaxSize {
		return fmt.Errorf("cpio: %s: size %d out of range", name, size)
	}
	if name == "" || strings.ContainsRune(name, 0) {
		return fmt.Errorf("cpio: bad entry name %q", name)
	}
	ino := uint32(0)
	if name != cpioTrailer {
		cw.ino++
		ino = cw.ino
	}
	namesize := len(name) + 1
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
	// rdevmajor, rdevminor, namesize, check
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0)
	if _, err := io.WriteString(cw.w, h+name+"\x00"); err != nil {
		return err
	}
	return cw.pad(int64(len(h) + namesize))
}

func (cw *cpioWriter) pad(n int64) error {
	_, err := cw.w.Write(cpioPad[:(4-n%4)%4])
	return err
}

// Dir writes a directory entry (mode 0755).
func (cw *cpioWriter) Dir(name string) error { return cw.header(name, cpioModeDir, 2, 0) }

// File writes a regular file entry (mode 0644) of size bytes read from r.
func (cw *cpioWriter) File(name string, size int64, r io.Reader) error {
	if err := cw.header(name, cpioModeFile, 1, size); err != nil {
		return err
	}
	n, err := io.CopyN(cw.w, r, size)
	if err != nil {
		return fmt.Errorf("cpio: %s: copied %d of %d bytes: %w", name, n, size, err)
	}
	return cw.pad(size)
}

// Close writes the trailer entry; it does not close the underlying writer.
func (cw *cpioWriter) Close() error { return cw.header(cpioTrailer, 0, 1, 0) }
