package conntrack

import "time"

// State is a flow's protocol state. It is also the flow's timeout class: the idle timeout of a
// flow is the Config timeout of its state.
type State uint8

// Flow states. TCP follows a simplified version of Linux conntrack's state machine.
const (
	StateNone      State = iota // free slot (never seen on a live flow)
	TCPSynSent                  // client sent SYN
	TCPSynRecv                  // backend answered SYN-ACK
	TCPEstablished              // client acknowledged the SYN-ACK (or loose pickup)
	TCPFinWait                  // one side sent FIN
	TCPCloseWait                // the other side acknowledged the first FIN
	TCPLastAck                  // both sides sent FIN
	TCPTimeWait                 // the last FIN was acknowledged
	TCPClose                    // a RST was seen
	UDPUnreplied                // UDP, no reply seen yet
	UDPStream                   // UDP, a reply was seen
	ICMPEcho                    // ICMP or ICMPv6 echo
	numStates
)

var stateNames = [numStates]string{
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
	"TIME_WAIT", "CLOSE", "UNREPLIED", "ASSURED", "ICMP",
}

// String returns the conntrack-style name of the state.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "INVALID"
}

func (s State) isTCP() bool { return s >= TCPSynSent && s <= TCPClose }

// TCP header flags as they appear in byte 13 of the TCP header. The data plane passes them to
// Insert and Update; other protocols pass 0.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
)

// Flow flags: the first two are set by the data plane at Insert, the rest are kept by the table.
const (
	// FlagNoSNAT keeps the client's source address (externalTrafficPolicy: Local); the reply key
	// is then backend → client.
	FlagNoSNAT uint8 = 1 << 0
	// FlagTerminating marks a flow to a terminating backend (kept until it ends, not renewed).
	FlagTerminating uint8 = 1 << 1

	flagFinOrig     uint8 = 1 << 2 // original direction sent FIN
	flagFinReply    uint8 = 1 << 3 // reply direction sent FIN
	flagLastFinRepl uint8 = 1 << 4 // the second FIN came from the reply direction
	flagSeenReply   uint8 = 1 << 5 // a packet of the reply direction was seen
	flagAssured     uint8 = 1 << 6 // the flow is worth keeping: never evicted before it expires

	// userFlags may be passed to Insert; allFlags may appear in an export record.
	userFlags = FlagNoSNAT | FlagTerminating
	allFlags  = userFlags | flagFinOrig | flagFinReply | flagLastFinRepl | flagSeenReply | flagAssured
)

// Dir tells which direction of a flow a key or packet belongs to.
type Dir uint8

const (
	// DirOriginal is client → frontend (as the flow was first seen).
	DirOriginal Dir = 0
	// DirReply is backend → SNAT address (or client when FlagNoSNAT).
	DirReply Dir = 1
)

// Time is measured in ticks of 2^24 ns (about 16.8 ms) kept in 32 bits; differences are taken
// with wrap-around, so any two times less than about 417 days apart compare correctly.
const tickShift = 24

func toTick(nowNanos int64) uint32 { return uint32(uint64(nowNanos) >> tickShift) }

func durationTicks(d time.Duration) uint32 {
	return uint32((uint64(d) + 1<<tickShift - 1) >> tickShift)
}

// initialState returns the state of a new flow from its protocol and first packet's TCP flags.
func initialState(proto uint8, tcpFlags uint8, loose bool) (State, bool) {
	switch proto {
	case protoTCP:
		switch {
		case tcpFlags&(TCPFlagSYN|TCPFlagACK|TCPFlagRST) == TCPFlagSYN:
			return TCPSynSent, true
		case loose && tcpFlags&(TCPFlagSYN|TCPFlagRST) == 0 && tcpFlags&TCPFlagACK != 0:
			return TCPEstablished, true
		}
		return StateNone, false
	case protoUDP:
		return UDPUnreplied, true
	case protoICMP, protoICMPv6:
		return ICMPEcho, true
	}
	return StateNone, false
}

// transition returns the state and flags after a packet in direction dir with TCP flags tf.
func transition(s State, fl uint8, dir Dir, tf uint8) (State, uint8) {
	if dir == DirReply {
		fl |= flagSeenReply
	}
	switch s {
	case UDPUnreplied:
		if dir == DirReply {
			return UDPStream, fl | flagAssured
		}
		return s, fl
	case UDPStream:
		return s, fl
	case ICMPEcho:
		if dir == DirReply {
			fl |= flagAssured
		}
		return s, fl
	}
	if !s.isTCP() {
		return s, fl
	}
	if tf&TCPFlagRST != 0 {
		return TCPClose, fl
	}
	syn, ack, fin := tf&TCPFlagSYN != 0, tf&TCPFlagACK != 0, tf&TCPFlagFIN != 0
	finMine, finOther := flagFinOrig, flagFinReply
	if dir == DirReply {
		finMine, finOther = flagFinReply, flagFinOrig
	}
	switch s {
	case TCPSynSent:
		if dir == DirReply && syn && ack {
			s = TCPSynRecv
		}
	case TCPSynRecv:
		if dir == DirOriginal && ack && !syn {
			s = TCPEstablished
			if fin {
				s, fl = TCPFinWait, fl|finMine
			}
		}
	case TCPEstablished:
		if fin {
			s, fl = TCPFinWait, fl|finMine
		}
	case TCPFinWait, TCPCloseWait:
		if fl&finMine == 0 { // the side that has not closed yet
			if fin {
				s, fl = TCPLastAck, fl|finMine
				fl &^= flagLastFinRepl
				if dir == DirReply {
					fl |= flagLastFinRepl
				}
			} else if ack && s == TCPFinWait && fl&finOther != 0 {
				s = TCPCloseWait
			}
		}
	case TCPLastAck:
		lastFinDir := DirOriginal
		if fl&flagLastFinRepl != 0 {
			lastFinDir = DirReply
		}
		if ack && !fin && !syn && dir != lastFinDir {
			s = TCPTimeWait
		}
	case TCPTimeWait, TCPClose:
		if dir == DirOriginal && syn && !ack {
			// The client reuses the tuple for a new connection.
			s = TCPSynSent
			fl &^= flagFinOrig | flagFinReply | flagLastFinRepl | flagSeenReply | flagAssured
		}
	}
	if s >= TCPEstablished && s != TCPClose && fl&flagSeenReply != 0 && fl&flagAssured == 0 && s != TCPSynSent {
		fl |= flagAssured
	}
	return s, fl
}

// validStateFor reports whether state s can belong to a flow of protocol proto (import checks).
func validStateFor(proto uint8, s State) bool {
	switch proto {
	case protoTCP:
		return s.isTCP()
	case protoUDP:
		return s == UDPUnreplied || s == UDPStream
	case protoICMP, protoICMPv6:
		return s == ICMPEcho
	}
	return false
}
