package tftpd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// errNoAnswer ends a transfer whose client stopped acknowledging.
var errNoAnswer = errors.New("client did not acknowledge")

// clientError is an ERROR packet the client sent.
type clientError struct {
	code uint16
	msg  string
}

func (e *clientError) Error() string {
	return fmt.Sprintf("client sent error code=%d: %s", e.code, e.msg)
}

// transfer is one read request being answered from its own socket (its
// transfer ID).
type transfer struct {
	conn    *net.UDPConn
	peer    *net.UDPAddr
	timeout time.Duration
	retries int
	// proven is set by the client's first acknowledgement: until then the
	// source address may be spoofed, and the first packet is sent once,
	// never retransmitted (a real client asks again).
	proven bool
	sent   int // bytes sent
	buf    []byte
}

// exchange sends pkt and waits for the ACK of block, retransmitting pkt
// after each timeout, retries times once the client is proven.
func (t *transfer) exchange(pkt []byte, block uint16) error {
	tries := 1
	if t.proven {
		tries += t.retries
	}
	for range tries {
		if _, err := t.conn.WriteToUDP(pkt, t.peer); err != nil {
			return fmt.Errorf("send to %s: %w", t.peer, err)
		}
		t.sent += len(pkt)
		deadline := time.Now().Add(t.timeout)
		for {
			if err := t.conn.SetReadDeadline(deadline); err != nil {
				return err
			}
			n, from, err := t.conn.ReadFromUDP(t.buf)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			} else if err != nil {
				return fmt.Errorf("read from %s: %w", t.peer, err)
			}
			if from.Port != t.peer.Port || !from.IP.Equal(t.peer.IP) {
				continue // not this transfer's client: ignored, not answered
			}
			r, ok := parseReply(t.buf[:n])
			switch {
			case !ok:
			case !r.ack:
				return &clientError{r.code, r.msg}
			case r.block == block:
				t.proven = true
				return nil
			}
			// A duplicate ACK: ignored (RFC 1123 4.2.3.1, the Sorcerer's
			// Apprentice); the block goes again at the timeout.
		}
	}
	return errNoAnswer
}

// fail sends an ERROR packet and gives up.
func (t *transfer) fail(code uint16, msg string) {
	pkt := packError(code, msg)
	if _, err := t.conn.WriteToUDP(pkt, t.peer); err == nil {
		t.sent += len(pkt)
	}
}

// send answers req with f: the OACK if options were asked for, then the
// blocks, each acknowledged before the next. It returns the file bytes
// sent.
func (t *transfer) send(req *request, f *os.File, maxBlock int) (int64, error) {
	blk := 512
	if req.hasOptions() {
		var kv []string
		if req.blksize > 0 {
			blk = min(req.blksize, maxBlock)
			kv = append(kv, "blksize", strconv.Itoa(blk))
		}
		if req.tsize {
			st, err := f.Stat()
			if err != nil {
				t.fail(errCodeUndefined, msgFailed)
				return 0, fmt.Errorf("stat: %w", err)
			}
			kv = append(kv, "tsize", strconv.FormatInt(st.Size(), 10))
		}
		if err := t.exchange(packOACK(kv...), 0); err != nil {
			return 0, err
		}
	}
	pkt := make([]byte, 4+blk)
	binary.BigEndian.PutUint16(pkt, opDATA)
	var n int64
	for block := uint16(1); ; block++ { // wraps to 0 past 65535, as clients expect
		l, err := io.ReadFull(f, pkt[4:])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			t.fail(errCodeUndefined, msgFailed)
			return n, fmt.Errorf("read: %w", err)
		}
		binary.BigEndian.PutUint16(pkt[2:], block)
		if err := t.exchange(pkt[:4+l], block); err != nil {
			return n, err
		}
		n += int64(l)
		if l < blk {
			return n, nil
		}
	}
}
