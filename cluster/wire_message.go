package cluster

import "fmt"

// Message framing: every gossip message, the package's own and the typed
// messages of Node.Handle/HandleFrom/Broadcast/SendTo, is
//
//	[WireVersion][type][sender length, 1..255][sender][payload]
//
// memberlist's NotifyMsg does not say who sent a message, so the envelope
// names the sending node. The name is the sender's own claim: it is as
// trustworthy as the holders of the cluster key (see doc.go, "Trust").

// msgHeaderBytes is the smallest message header: version, type, sender
// length and a one-byte sender.
const msgHeaderBytes = 4

// MsgType is the type byte of a gossip message.
type MsgType uint8

const (
	// MsgAllocations carries one node's allocation set (internal).
	MsgAllocations MsgType = 1
	// MsgUserMin is the first type free for Node.Handle / Node.Broadcast users
	// (endpoint health, flow-state sync...). Types below it are reserved.
	MsgUserMin MsgType = 16
)

// Message is a decoded message envelope.
type Message struct {
	Type    MsgType // what the payload is
	Sender  string  // the node that sent it, as it claims
	Payload []byte  // aliases the decoded bytes
}

// EncodeMessage frames payload as a message of type t sent by sender (a node
// name of 1..255 bytes; Config.Validate checks this node's).
func EncodeMessage(t MsgType, sender string, payload []byte) []byte {
	b := make([]byte, 0, 3+len(sender)+len(payload))
	b = append(b, WireVersion, byte(t), byte(len(sender)))
	b = append(b, sender...)
	return append(b, payload...)
}

// DecodeMessage splits an untrusted message into its envelope fields (the
// payload aliases b). It reads only the header, so it is cheap enough to run
// before the message's size is checked against its type's limit.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) < msgHeaderBytes {
		return Message{}, fmt.Errorf("decode message: %w: %d bytes", ErrShort, len(b))
	}
	if b[0] != WireVersion {
		return Message{}, fmt.Errorf("decode message: %w %d", ErrVersion, b[0])
	}
	if b[1] == 0 {
		return Message{}, fmt.Errorf("decode message: type 0: %w", ErrInvalid)
	}
	n := int(b[2])
	if n == 0 {
		return Message{}, fmt.Errorf("decode message: empty sender: %w", ErrInvalid)
	}
	if len(b) < 3+n {
		return Message{}, fmt.Errorf("decode message: sender of %d bytes in %d: %w", n, len(b)-3, ErrShort)
	}
	return Message{Type: MsgType(b[1]), Sender: string(b[3 : 3+n]), Payload: b[3+n:]}, nil
}
