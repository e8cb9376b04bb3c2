package swarm

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"
)

// SuggestExtension names the BEP 10 extension message by which the
// appliance's seeder tells a node which pieces to ask it for first: pieces
// that no node is known to hold, a different few to each node, as a
// BitTorrent super-seeder would. Without it every node picks what it asks
// the appliance for among the pieces none of its own peers hold, at
// random: a node sees a dozen of the rack, so it often asks for a piece
// another node already has, and the appliance sends pieces twice while
// others have not left it once.
//
// The payload is a list of piece indexes, 4 bytes each, big-endian: the
// whole current suggestion for the torrent of the connection, replacing
// the previous one (an empty list withdraws it). A client that does not
// announce the extension never receives it.
const SuggestExtension pp.ExtensionName = "moobi_suggest"

// MaxSuggest is the most pieces one suggestion may name.
const MaxSuggest = 64

// EncodeSuggest returns the payload suggesting pieces (at most MaxSuggest).
func EncodeSuggest(pieces []int) []byte {
	b := make([]byte, 0, 4*len(pieces))
	for _, p := range pieces {
		b = binary.BigEndian.AppendUint32(b, uint32(p))
	}
	return b
}

// DecodeSuggest parses a suggestion for a torrent of n pieces.
func DecodeSuggest(b []byte, n int) ([]int, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("suggestion of %d bytes: not a whole number of 4-byte piece indexes", len(b))
	}
	if len(b)/4 > MaxSuggest {
		return nil, fmt.Errorf("suggestion of %d pieces: more than %d", len(b)/4, MaxSuggest)
	}
	out := make([]int, 0, len(b)/4)
	for i := 0; i < len(b); i += 4 {
		p := binary.BigEndian.Uint32(b[i:])
		if int64(p) >= int64(n) {
			return nil, fmt.Errorf("suggestion entry %d: piece %d of a torrent of %d pieces", i/4, p, n)
		}
		out = append(out, int(p))
	}
	return out, nil
}

// AcceptSuggestions makes cfg's client announce SuggestExtension on every
// connection, and calls f with each suggestion a peer sends: its pieces, or
// the error that made the payload unusable (the suggestion is then
// ignored; the connection stays). f runs on the connection's reader with
// the library's client lock held: it must not block, nor call into the
// library.
func AcceptSuggestions(cfg *torrent.ClientConfig, f func(pc *torrent.PeerConn, pieces []int, err error)) {
	// Every connection starts with the client's built-in map (v1.61.0,
	// PeerConn.addBuiltinLtepProtocols), shared by all; ours is a copy with
	// the extension added, made once.
	var once sync.Once
	var ours *torrent.LocalLtepProtocolMap
	cfg.Callbacks.PeerConnAdded = append(cfg.Callbacks.PeerConnAdded, func(pc *torrent.PeerConn) {
		once.Do(func() {
			m := *pc.LocalLtepProtocolMap
			m.Index = slices.Clone(m.Index)
			m.AddUserProtocol(SuggestExtension)
			ours = &m
		})
		pc.LocalLtepProtocolMap = ours
	})
	cfg.Callbacks.PeerConnReadExtensionMessage = append(cfg.Callbacks.PeerConnReadExtensionMessage, func(e torrent.PeerConnReadExtensionMessageEvent) {
		if e.ExtensionNumber == pp.HandshakeExtendedID {
			return
		}
		name, _, err := e.PeerConn.LocalLtepProtocolMap.LookupId(e.ExtensionNumber)
		if err != nil || name != SuggestExtension {
			return
		}
		info := e.PeerConn.Torrent().Info()
		if info == nil {
			f(e.PeerConn, nil, fmt.Errorf("suggestion before the torrent's info"))
			return
		}
		pieces, err := DecodeSuggest(e.Payload, info.NumPieces())
		f(e.PeerConn, pieces, err)
	})
}
