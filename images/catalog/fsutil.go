package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync/atomic"
	"syscall"
)

// CrashPoints are the named steps of Publish at which the process kills itself
// when MOOBI_CRASH_POINT names them (see the package documentation).
var CrashPoints = []string{"copied", "torrent", "manifest", "renamed", "symlinked", "switched", "pruned"}

// crashPoint kills the process with SIGKILL if MOOBI_CRASH_POINT equals
// point: the test hook that simulates a power loss at that step of Publish.
func crashPoint(point string) {
	if os.Getenv("MOOBI_CRASH_POINT") == point {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is delivered asynchronously; never continue past the point
	}
}

// syncDir fsyncs a folder, making the creation, removal and renaming of its
// entries durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// hashWriter counts and hashes what is written through it.
type hashWriter struct {
	w    io.Writer
	sum  hash.Hash
	size int64
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, sum: sha256.New()} }

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.sum.Write(p[:n])
	hw.size += int64(n)
	return n, err
}

func (hw *hashWriter) info() FileInfo {
	return FileInfo{Size: hw.size, SHA256: hex.EncodeToString(hw.sum.Sum(nil))}
}

// ctxReader fails reads once ctx is done, so that long copies can be
// cancelled; it adds the bytes read to n, if not nil.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   *atomic.Int64
}

func (cr ctxReader) Read(p []byte) (int, error) {
	if err := cr.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := cr.r.Read(p)
	if cr.n != nil {
		cr.n.Add(int64(n))
	}
	return n, err
}

// createSynced creates path (which must not exist), lets fill write its
// content through a hashing writer, then fsyncs and closes it. It returns the
// size and sha256 of what fill wrote.
func createSynced(path string, fill func(w io.Writer) error) (FileInfo, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return FileInfo{}, err
	}
	hw := newHashWriter(f)
	err = fill(hw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileInfo{}, fmt.Errorf("write %s: %w", path, err)
	}
	return hw.info(), nil
}

// copyFile copies the regular file src to dst (created, fsynced), computing
// the sha256 in the same pass. check, if not nil, sees the first bytes of src
// (up to 4 KiB) before anything is copied and may refuse the file. The
// bytes copied are added to read, if not nil.
func copyFile(ctx context.Context, dst, src string, check func(head []byte) error, read *atomic.Int64) (FileInfo, error) {
	in, err := os.Open(src)
	if err != nil {
		return FileInfo{}, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return FileInfo{}, err
	}
	if !st.Mode().IsRegular() {
		return FileInfo{}, fmt.Errorf("%s is not a regular file", src)
	}
	if check != nil {
		head := make([]byte, 4096)
		n, err := io.ReadFull(in, head)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return FileInfo{}, fmt.Errorf("read %s: %w", src, err)
		}
		if err := check(head[:n]); err != nil {
			return FileInfo{}, err
		}
		if _, err := in.Seek(0, io.SeekStart); err != nil {
			return FileInfo{}, err
		}
	}
	return createSynced(dst, func(w io.Writer) error {
		_, err := io.CopyBuffer(w, ctxReader{ctx, in, read}, make([]byte, 1<<20))
		return err
	})
}

// lockDir takes an exclusive flock(2) on a folder; unlock with the returned
// function. With wait false it fails with syscall.EWOULDBLOCK if the lock is
// held elsewhere.
func lockDir(dir string, wait bool) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the last descriptor releases the lock
}

// versionLess orders version names naturally: runs of digits compare as
// numbers, so v2 < v10 and 2024.9 < 2024.10.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		ra, rb := run(a), run(b)
		if ra != rb {
			da, db := isDigit(ra[0]), isDigit(rb[0])
			switch {
			case da && db:
				na, nb := trimZeros(ra), trimZeros(rb)
				if len(na) != len(nb) {
					return len(na) < len(nb)
				}
				if na != nb {
					return na < nb
				}
			default:
				return ra < rb
			}
		}
		a, b = a[len(ra):], b[len(rb):]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// run returns the leading run of digits or of non-digits of s (non-empty).
func run(s string) string {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i]
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
