package lab

import (
	"fmt"
	"io"
)

// File type bits for cpio modes.
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeLink = 0o120000
	modeChr  = 0o020000
)

// cpioWriter writes a "newc" (SVR4, no CRC) cpio archive as read by the
// Linux initramfs unpacker. All entries are owned by root with mtime 0 so
// the output only depends on the input.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	off int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// header writes an entry header and name; the caller writes size bytes of
// data and then calls pad.
func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) error {
	if size > 0xffffffff {
		return fmt.Errorf("cpio: %s too large", name)
	}
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	ino := uint32(0)
	if name != "TRAILER!!!" {
		c.ino++
		ino = c.ino
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if err := c.write([]byte(h + name + "\x00")); err != nil {
		return err
	}
	return c.pad()
}

// entry writes an entry whose data is in memory.
func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	if err := c.header(name, mode, int64(len(data)), 0, 0); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}

// stream writes an entry of size bytes read from r.
func (c *cpioWriter) stream(name string, mode uint32, size int64, r io.Reader) error {
	if err := c.header(name, mode, size, 0, 0); err != nil {
		return err
	}
	n, err := io.Copy(writerFunc(c.write), io.LimitReader(r, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("cpio: %s: short read (%d of %d bytes)", name, n, size)
	}
	return c.pad()
}

// device writes a character device node.
func (c *cpioWriter) device(name string, perm, major, minor uint32) error {
	return c.header(name, modeChr|perm, 0, major, minor)
}

// close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) close() error {
	return c.entry("TRAILER!!!", 0, nil)
}

type writerFunc func([]byte) error

func (f writerFunc) Write(b []byte) (int, error) {
	if err := f(b); err != nil {
		return 0, err
	}
	return len(b), nil
}
