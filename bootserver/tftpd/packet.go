package tftpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TFTP opcodes (RFC 1350) and OACK (RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// TFTP error codes sent and read (RFC 1350, RFC 2347).
const (
	errCodeUndefined = 0
	errCodeNotFound  = 1
	errCodeAccess    = 2
	errCodeOptions   = 8 // the client refuses the options: UEFI's size probe ends so
)

// request is a parsed read or write request.
type request struct {
	write    bool
	filename string
	mode     string // lower case
	// blksize is the block size asked for (0: none, or an unusable value,
	// which the server ignores as RFC 2348 allows); tsize whether the
	// transfer size was asked for (RFC 2349).
	blksize int
	tsize   bool
}

// hasOptions reports whether the server answers with an OACK.
func (r *request) hasOptions() bool { return r.blksize > 0 || r.tsize }

// parseRequest parses an RRQ or WRQ: opcode, file name, mode, then option
// name and value pairs, each NUL-terminated. Options the server does not
// implement are ignored.
func parseRequest(b []byte) (*request, error) {
	if len(b) < 2 {
		return nil, errors.New("packet shorter than an opcode")
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		return nil, fmt.Errorf("opcode %d is not a read or write request", op)
	}
	fields := bytes.Split(b[2:], []byte{0})
	// A well-formed request ends with NUL, leaving an empty last field.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return nil, errors.New("request is not a NUL-terminated file name and mode")
	}
	fields = fields[:len(fields)-1]
	r := &request{write: op == opWRQ, filename: string(fields[0]), mode: strings.ToLower(string(fields[1]))}
	if r.filename == "" {
		return nil, errors.New("empty file name")
	}
	opts := fields[2:]
	if len(opts)%2 != 0 {
		return nil, fmt.Errorf("option %q has no value", clip(string(opts[len(opts)-1])))
	}
	for i := 0; i < len(opts); i += 2 {
		v := string(opts[i+1])
		switch strings.ToLower(string(opts[i])) {
		case "blksize":
			if n, err := strconv.Atoi(v); err == nil && n >= 8 && n <= 65464 {
				r.blksize = n
			}
		case "tsize":
			r.tsize = true
		}
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// packOACK builds an OACK with the options given as name, value pairs.
func packOACK(kv ...string) []byte {
	b := []byte{0, opOACK}
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	return b
}

// packError builds an ERROR packet.
func packError(code uint16, msg string) []byte {
	b := []byte{0, opERROR, byte(code >> 8), byte(code)}
	return append(append(b, msg...), 0)
}

// reply is a packet a client sends during a transfer: an ACK of block, or
// an ERROR with code and msg.
type reply struct {
	ack   bool
	block uint16
	code  uint16
	msg   string
}

func parseReply(b []byte) (reply, bool) {
	if len(b) < 4 {
		return reply{}, false
	}
	switch binary.BigEndian.Uint16(b) {
	case opACK:
		return reply{ack: true, block: binary.BigEndian.Uint16(b[2:])}, true
	case opERROR:
		msg, _, _ := bytes.Cut(b[4:], []byte{0})
		return reply{code: binary.BigEndian.Uint16(b[2:]), msg: clip(string(msg))}, true
	}
	return reply{}, false
}
