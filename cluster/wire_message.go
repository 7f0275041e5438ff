package cluster

import "fmt"

// Message framing: every gossip message, the package's own and the typed
// messages of Node.Handle/Broadcast/SendTo, is [WireVersion][type][payload].

// msgHeaderBytes is the message header: version, type.
const msgHeaderBytes = 2

// MsgType is the type byte of a gossip message.
type MsgType uint8

const (
	// MsgAllocations carries one node's allocation set (internal).
	MsgAllocations MsgType = 1
	// MsgUserMin is the first type free for Node.Handle / Node.Broadcast users
	// (endpoint health, flow-state sync...). Types below it are reserved.
	MsgUserMin MsgType = 16
)

// EncodeMessage frames payload as a message of type t.
func EncodeMessage(t MsgType, payload []byte) []byte {
	b := make([]byte, 0, msgHeaderBytes+len(payload))
	b = append(b, WireVersion, byte(t))
	return append(b, payload...)
}

// DecodeMessage splits an untrusted message into its type and payload (the
// payload aliases b).
func DecodeMessage(b []byte) (MsgType, []byte, error) {
	if len(b) < msgHeaderBytes {
		return 0, nil, fmt.Errorf("decode message: %w: %d bytes", ErrShort, len(b))
	}
	if b[0] != WireVersion {
		return 0, nil, fmt.Errorf("decode message: %w %d", ErrVersion, b[0])
	}
	if b[1] == 0 {
		return 0, nil, fmt.Errorf("decode message: type 0: %w", ErrInvalid)
	}
	return MsgType(b[1]), b[msgHeaderBytes:], nil
}
