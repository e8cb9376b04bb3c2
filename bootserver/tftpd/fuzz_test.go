package tftpd

import (
	"bytes"
	"testing"
)

// FuzzParseRequest checks that any datagram on the TFTP port is either
// refused with an error or parsed into a request the server can act on.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"\x00\x01undionly.kpxe\x00octet\x00",
		"\x00\x01ipxe.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00",
		"\x00\x01ipxe.efi\x00OCTET\x00BLKSIZE\x007\x00windowsize\x004\x00",
		"\x00\x02upload.bin\x00octet\x00",
		"\x00\x01a\x00netascii\x00tsize\x00",
		"\x00\x04\x00\x01",
		"\x00\x01\x00octet\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			if r != nil {
				t.Fatalf("error %v with a request", err)
			}
			return
		}
		if r.filename == "" || bytes.IndexByte([]byte(r.filename), 0) >= 0 {
			t.Fatalf("file name %q", r.filename)
		}
		if r.blksize != 0 && (r.blksize < 8 || r.blksize > 65464) {
			t.Fatalf("blksize %d outside RFC 2348's range", r.blksize)
		}
		if b[1] == opWRQ != r.write {
			t.Fatalf("opcode %d parsed as write=%v", b[1], r.write)
		}
	})
}
