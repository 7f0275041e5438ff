package pktgen

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/asavie/xdp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Flow is one flow's 5-tuple (the protocol is Config.Proto).
type Flow struct {
	SrcAddr, DstAddr netip.Addr
	SrcPort, DstPort uint16
}

// Flow returns flow i (0 ≤ i < Flows): the source port varies fastest, then the source address, the
// destination port and the destination address. c.SrcPrefix must be set.
func (c Config) Flow(i int) Flow {
	sAddr, nsAddr := hosts(c.SrcPrefix)
	dAddr, ndAddr := hosts(c.DstPrefix)
	nsPort, ndPort := c.SrcPorts.size(), c.DstPorts.size()
	f := Flow{SrcPort: c.SrcPorts.First + uint16(i%nsPort)}
	i /= nsPort
	f.SrcAddr = addAddr(sAddr, i%nsAddr)
	i /= nsAddr
	f.DstPort = c.DstPorts.First + uint16(i%ndPort)
	i /= ndPort
	f.DstAddr = addAddr(dAddr, i%ndAddr)
	return f
}

func addAddr(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// layout says how many frame slots the UMEM holds and how big it is: Flows × ceil(TxRingSize/Flows) slots,
// so that a full completion ring never holds the same slot twice, packed into 2048-byte chunks.
func layout(c Config) (slots, umemBytes int) {
	slotSize := (c.frameLen() + slotAlign - 1) / slotAlign * slotAlign
	perChunk := chunkSize / slotSize
	reps := (c.TxRingSize + c.Flows - 1) / c.Flows
	slots = c.Flows * reps
	chunks := (slots + perChunk - 1) / perChunk
	return slots, chunks * chunkSize
}

// Image is the prebuilt content of the UMEM: every flow's frame, repeated in its slots.
type Image struct {
	// Bytes is the UMEM content (a whole number of 2048-byte chunks).
	Bytes []byte
	// Slots are the descriptors of the frames; slot i carries flow i mod Flows.
	Slots []xdp.Desc
	// FrameLen is the length of every frame as built (FrameSize minus the FCS).
	FrameLen int
}

// Frame returns the bytes of slot i.
func (im *Image) Frame(i int) []byte {
	d := im.Slots[i]
	return im.Bytes[d.Addr : d.Addr+uint64(d.Len)]
}

// BuildFrames builds every flow's frame once with gopacket (lengths and checksums computed) and lays the
// frames out as the UMEM image. c must be valid and have SrcPrefix, SrcMAC and DstMAC set.
func BuildFrames(c Config) (*Image, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.SrcPrefix.IsValid() || len(c.SrcMAC) != 6 || len(c.DstMAC) != 6 {
		return nil, fmt.Errorf("build frames: source prefix, source MAC and destination MAC must be known")
	}
	slots, umem := layout(c)
	im := &Image{Bytes: make([]byte, umem), Slots: make([]xdp.Desc, slots), FrameLen: c.frameLen()}
	slotSize := (im.FrameLen + slotAlign - 1) / slotAlign * slotAlign
	perChunk := chunkSize / slotSize
	for i := range im.Slots {
		im.Slots[i] = xdp.Desc{Addr: uint64(i/perChunk*chunkSize + i%perChunk*slotSize), Len: uint32(im.FrameLen)}
	}
	buf := gopacket.NewSerializeBuffer()
	for flow := 0; flow < c.Flows; flow++ {
		frame, err := buildFrame(buf, c, flow)
		if err != nil {
			return nil, fmt.Errorf("build frame of flow %d: %w", flow, err)
		}
		for s := flow; s < slots; s += c.Flows {
			copy(im.Frame(s), frame)
		}
	}
	return im, nil
}

// buildFrame serializes flow's frame into buf and returns it (valid until buf is reused).
func buildFrame(buf gopacket.SerializeBuffer, c Config, flow int) ([]byte, error) {
	f := c.Flow(flow)
	eth := &layers.Ethernet{SrcMAC: c.SrcMAC, DstMAC: c.DstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Id: uint16(flow),
		SrcIP: net.IP(f.SrcAddr.AsSlice()), DstIP: net.IP(f.DstAddr.AsSlice()),
	}
	payloadLen := c.frameLen() - c.Proto.headerLen()
	var l4 gopacket.SerializableLayer
	switch c.Proto {
	case ProtoUDP:
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.SrcPort), DstPort: layers.UDPPort(f.DstPort)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		l4 = udp
	case ProtoTCPSYN, ProtoTCPACK:
		ip.Protocol = layers.IPProtocolTCP
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.SrcPort), DstPort: layers.TCPPort(f.DstPort), Window: 64240,
			Seq: uint32(flow)*2654435761 + 1}
		if c.Proto == ProtoTCPSYN {
			tcp.SYN = true
			payloadLen = 0
		} else {
			tcp.ACK = true
			tcp.Ack = 1
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		l4 = tcp
	}
	if payloadLen < 0 {
		return nil, fmt.Errorf("frame size %d is too small for %v headers", c.FrameSize, c.Proto)
	}
	payload := make([]byte, payloadLen)
	for i := range payload {
		payload[i] = byte(i)
	}
	if err := buf.Clear(); err != nil {
		return nil, err
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if len(b) < c.frameLen() { // a SYN: pad after the IP packet like a wire pads short frames
		pad, err := buf.AppendBytes(c.frameLen() - len(b))
		if err != nil {
			return nil, err
		}
		clear(pad)
		b = buf.Bytes()
	}
	if len(b) != c.frameLen() {
		return nil, fmt.Errorf("built %d bytes, want %d", len(b), c.frameLen())
	}
	return b, nil
}
