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
// random: a node sees a few of the rack, so it often asks for a piece
// another node already has, and the appliance sends pieces twice while
// others have not left it once.
//
// The payload is one byte of flags (SuggestOnly), then a list of piece
// indexes, 4 bytes each, big-endian: the whole current suggestion for the
// torrent of the connection, replacing the previous one (an empty list
// without SuggestOnly withdraws it). A client that does not announce the
// extension never receives it.
const SuggestExtension pp.ExtensionName = "moobi_suggest"

// SuggestOnly is the flag by which the seeder asks the node for no piece but
// those suggested (none, if the list is empty), while some pieces are held
// by no node: its link then carries only pieces that have not left it yet.
const SuggestOnly = 1

// MaxSuggest is the most pieces one suggestion may name.
const MaxSuggest = 64

// Suggestion is one suggestion of the seeder to a node.
type Suggestion struct {
	Pieces []int // ask the seeder for these first
	Only   bool  // and for no other piece (SuggestOnly)
}

// EncodeSuggest returns the payload of sg (at most MaxSuggest pieces).
func EncodeSuggest(sg Suggestion) []byte {
	b := make([]byte, 1, 1+4*len(sg.Pieces))
	if sg.Only {
		b[0] = SuggestOnly
	}
	for _, p := range sg.Pieces {
		b = binary.BigEndian.AppendUint32(b, uint32(p))
	}
	return b
}

// DecodeSuggest parses a suggestion for a torrent of n pieces.
func DecodeSuggest(b []byte, n int) (Suggestion, error) {
	if len(b) == 0 {
		return Suggestion{}, fmt.Errorf("empty suggestion: no flags byte")
	}
	if b[0]&^SuggestOnly != 0 {
		return Suggestion{}, fmt.Errorf("suggestion flags %#02x: unknown bits %#02x", b[0], b[0]&^SuggestOnly)
	}
	sg := Suggestion{Only: b[0]&SuggestOnly != 0}
	b = b[1:]
	if len(b)%4 != 0 {
		return Suggestion{}, fmt.Errorf("suggestion of %d bytes after the flags: not a whole number of 4-byte piece indexes", len(b))
	}
	if len(b)/4 > MaxSuggest {
		return Suggestion{}, fmt.Errorf("suggestion of %d pieces: more than %d", len(b)/4, MaxSuggest)
	}
	sg.Pieces = make([]int, 0, len(b)/4)
	for i := 0; i < len(b); i += 4 {
		p := binary.BigEndian.Uint32(b[i:])
		if int64(p) >= int64(n) {
			return Suggestion{}, fmt.Errorf("suggestion entry %d: piece %d of a torrent of %d pieces", i/4, p, n)
		}
		sg.Pieces = append(sg.Pieces, int(p))
	}
	return sg, nil
}

// AcceptSuggestions makes cfg's client announce SuggestExtension on every
// connection, and calls f with each suggestion a peer sends, or the error
// that made the payload unusable (the suggestion is then ignored; the
// connection stays). f runs on the connection's reader with the library's
// client lock held: it must not block, nor call into the library except
// the connection's SetRequestFilter.
func AcceptSuggestions(cfg *torrent.ClientConfig, f func(pc *torrent.PeerConn, sg Suggestion, err error)) {
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
			f(e.PeerConn, Suggestion{}, fmt.Errorf("suggestion before the torrent's info"))
			return
		}
		sg, err := DecodeSuggest(e.Payload, info.NumPieces())
		f(e.PeerConn, sg, err)
	})
}
