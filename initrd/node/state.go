package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// The persistent state area: the last StateAreaSize bytes of a cache
// device, which the image never uses (decideCache keeps them out). It holds
// what a node keeps across reboots and re-images — its SSH host keys — in
// two slots written in turn, so that a write cut short by a power loss
// leaves the other slot good.
const (
	StateAreaSize = 1 << 20
	stateSlotSize = StateAreaSize / 2
	stateMagic    = "MOOBI-STATE1"
	// stateHeader: magic, sequence (8 bytes), length (4), SHA-256 (32).
	stateHeader = len(stateMagic) + 8 + 4 + 32
)

// State is what a node keeps on its cache device.
type State struct {
	// Host and MAC say whose state it is: a disk moved to another host
	// starts afresh.
	Host string `json:"host"`
	MAC  string `json:"mac"`
	// HostKeys maps an SSH host key file name (ssh_host_ed25519_key) to
	// its OpenSSH private key; the public halves are derived.
	HostKeys map[string]string `json:"ssh_host_keys"`
	seq      uint64
}

// ErrNoState means the device holds no valid state (new, or both slots
// damaged).
var ErrNoState = errors.New("no persistent state on the cache device")

// ReadState reads the newest valid slot of the state area of dev, whose
// size is devSize.
func ReadState(dev string, devSize int64) (State, error) {
	if devSize < StateAreaSize*2 {
		return State{}, fmt.Errorf("cache device %s: %d bytes, too small for a state area", dev, devSize)
	}
	f, err := os.Open(dev)
	if err != nil {
		return State{}, err
	}
	defer f.Close()
	var best State
	found := false
	for i := int64(0); i < 2; i++ {
		buf := make([]byte, stateSlotSize)
		if _, err := f.ReadAt(buf, devSize-StateAreaSize+i*stateSlotSize); err != nil && err != io.EOF {
			return State{}, fmt.Errorf("cache device %s: read state: %w", dev, err)
		}
		st, ok := decodeSlot(buf)
		if ok && (!found || st.seq > best.seq) {
			best, found = st, true
		}
	}
	if !found {
		return State{}, ErrNoState
	}
	return best, nil
}

// WriteState writes st into the older slot of the state area of dev and
// syncs it.
func WriteState(dev string, devSize int64, st State) error {
	prev, err := ReadState(dev, devSize)
	var slot int64
	switch {
	case err == nil:
		st.seq = prev.seq + 1
		slot = int64(st.seq % 2)
	case errors.Is(err, ErrNoState):
		st.seq = 1
		slot = 1
	default:
		return err
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if stateHeader+len(payload) > stateSlotSize {
		return fmt.Errorf("persistent state: %d bytes, more than a slot holds", len(payload))
	}
	var b bytes.Buffer
	b.WriteString(stateMagic)
	binary.Write(&b, binary.BigEndian, st.seq)
	binary.Write(&b, binary.BigEndian, uint32(len(payload)))
	sum := sha256.Sum256(payload)
	b.Write(sum[:])
	b.Write(payload)
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b.Bytes(), devSize-StateAreaSize+slot*stateSlotSize); err != nil {
		f.Close()
		return fmt.Errorf("cache device %s: write state: %w", dev, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cache device %s: sync state: %w", dev, err)
	}
	return f.Close()
}

// decodeSlot reads one slot; ok is false unless magic, length and
// checksum all hold.
func decodeSlot(buf []byte) (State, bool) {
	if len(buf) < stateHeader || string(buf[:len(stateMagic)]) != stateMagic {
		return State{}, false
	}
	h := buf[len(stateMagic):]
	seq := binary.BigEndian.Uint64(h[:8])
	n := int(binary.BigEndian.Uint32(h[8:12]))
	if n > len(buf)-stateHeader {
		return State{}, false
	}
	payload := buf[stateHeader : stateHeader+n]
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], h[12:44]) {
		return State{}, false
	}
	var st State
	if json.Unmarshal(payload, &st) != nil {
		return State{}, false
	}
	st.seq = seq
	return st, true
}
