package cluster

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/memberlist"
)

// mockNetwork is memberlist's in-memory MockNetwork wired for Node tests: no sockets, so no port
// clashes and no loopback packet loss on a loaded machine, and no network needed. Two properties
// of MockNetwork shape it:
//   - its address maps are not guarded, so every transport is made up front, before any node
//     starts (adding one while nodes run would be a data race);
//   - delivery is a send on the receiver's unbuffered channel, and memberlist answers a ping
//     from its packet goroutine, so two nodes pinging each other at once would each block
//     sending the ack to the other, for ever; and once a node has shut down, every packet or
//     stream to it would block its sender for ever. So each transport has a pump that takes
//     deliveries at once into a queue of mockQueueLen, dropping packets when it is full (as
//     UDP would), and after Shutdown discards packets and closes streams (as a crashed host's
//     address would), until the test ends.
type mockNetwork struct {
	network    memberlist.MockNetwork
	transports map[string]*mockTransport
}

// mockQueueLen is the depth of a mock transport's packet and stream queues.
const mockQueueLen = 256

// newMockNetwork makes one transport per name, with pumps that run until the test ends.
func newMockNetwork(t *testing.T, names ...string) *mockNetwork {
	t.Helper()
	m := &mockNetwork{transports: map[string]*mockTransport{}}
	testDone := make(chan struct{})
	t.Cleanup(func() { close(testDone) })
	for _, name := range names {
		tr := &mockTransport{
			MockTransport: m.network.NewTransport(name),
			packets:       make(chan *memberlist.Packet, mockQueueLen),
			streams:       make(chan net.Conn, mockQueueLen),
		}
		go tr.pump(testDone)
		m.transports[name] = tr
	}
	return m
}

// config is testConfig with name's transport on this network.
func (m *mockNetwork) config(t *testing.T, name string, key []byte) Config {
	t.Helper()
	tr, ok := m.transports[name]
	if !ok {
		t.Fatalf("mock network: no transport for %s (make every transport in newMockNetwork)", name)
	}
	c := testConfig(t, name, key)
	c.Transport = tr
	return c
}

// mockTransport is a MockTransport whose deliveries never block the sender.
type mockTransport struct {
	*memberlist.MockTransport
	packets  chan *memberlist.Packet // what memberlist reads (PacketCh)
	streams  chan net.Conn           // what memberlist reads (StreamCh)
	shutDown atomic.Bool             // memberlist shut the transport down
}

// PacketCh returns the queue the pump fills.
func (tr *mockTransport) PacketCh() <-chan *memberlist.Packet { return tr.packets }

// StreamCh returns the queue the pump fills.
func (tr *mockTransport) StreamCh() <-chan net.Conn { return tr.streams }

// Shutdown makes the pump discard what others still send here.
func (tr *mockTransport) Shutdown() error {
	tr.shutDown.Store(true)
	return tr.MockTransport.Shutdown()
}

// pump moves deliveries from MockTransport's unbuffered channels into the queues until done.
func (tr *mockTransport) pump(done <-chan struct{}) {
	for {
		select {
		case p := <-tr.MockTransport.PacketCh():
			if tr.shutDown.Load() {
				continue
			}
			select {
			case tr.packets <- p:
			default: // a full queue drops the packet, as a full socket buffer would
			}
		case conn := <-tr.MockTransport.StreamCh():
			if tr.shutDown.Load() {
				_ = conn.Close()
				continue
			}
			select {
			case tr.streams <- conn:
			default:
				_ = conn.Close()
			}
		case <-done:
			return
		}
	}
}
