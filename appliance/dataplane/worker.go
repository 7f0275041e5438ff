package dataplane

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/xdpsvc/lb/appliance/capture"
	"github.com/xdpsvc/lb/appliance/maglev"
	"github.com/xdpsvc/lb/conntrack"
	"github.com/xdpsvc/lb/packet"
)

// BatchSize is the most frames a worker takes from one queue per Poll.
const BatchSize = 256

// floatingSNATPortMin is the lowest SNAT port on a floating SNAT address (a VIP).
const floatingSNATPortMin = 1024

// counter is a per-worker counter: written only by its worker (load+store, no locked
// instruction), read by anyone with Load.
type counter struct{ atomic.Uint64 }

func (c *counter) inc()         { c.Store(c.Load() + 1) }
func (c *counter) add(n uint64) { c.Store(c.Load() + n) }

// portCounters are one Service port's counters in one worker.
type portCounters struct {
	packets, bytes, newFlows counter
}

// workerCounters are everything one worker counts.
type workerCounters struct {
	rx, tx, txCopies, batches counter
	drops                     [NumReasons]counter
	arpReplies, echoReplies   counter
	resets, unreachables      counter
	newFlows, icmpTranslated  counter
	// ports is indexed by service.PortID (bounded by Config.MaxServicePorts).
	ports []portCounters
}

// action is what becomes of a frame once the pipeline is done with it.
type action uint8

const (
	actDrop action = iota // handed back to its ring, counted by the stage that dropped it
	actTx                 // transmitted on verdict.egress
)

// verdict is what a pipeline stage decided for one frame.
type verdict struct {
	act    action
	egress int // index of the port the frame leaves by (actTx only)
	length int // the frame's length after rewriting (actTx only)
}

// dropped is the verdict of a frame that goes no further; the caller counts the reason.
var dropped = verdict{act: actDrop}

// transmit is the verdict of a frame to send out of port egress with its first length bytes.
func transmit(egress, length int) verdict {
	return verdict{act: actTx, egress: egress, length: length}
}

// batchContext is what stays the same for every frame of one Poll: read once at the top of the
// batch and passed to each stage.
type batchContext struct {
	plan *Plan  // the Service plan in force for the batch
	now  int64  // the batch's time in nanoseconds (one clock read per batch)
	gen  uint32 // the neighbour table's generation, for the per-worker neighbour cache
}

// Worker runs the pipeline for one queue index on every port.
type Worker struct {
	dp     *DataPlane
	queue  int
	capIdx int // this worker's ring in an armed capture.Session
	io     []FrameIO

	rx     []Frame
	txSame [][]Frame  // per port: frames received there that leave there
	txCopy [][][]byte // per egress port: frames from other ports to copy out
	rel    [][]Frame  // per port: frames to hand back (dropped, or copied out)

	hs      []packet.Headers    // per frame of the batch
	one     packet.Headers      // the frame of an unbatched process call
	pr      []packet.DropReason // per frame: Parse's result
	keys    []packet.FlowKey    // TCP/UDP keys of the batch
	kidx    []int32             // frame index of keys[j]
	hds     []conntrack.Handle  // per frame: lookup result
	found   []conntrack.Handle  // per key
	out     packet.FlowKey
	nf      conntrack.NewFlow
	cache   neighCache
	replies replyLimiter // this worker's local replies (RST, ICMP, echo, ARP)
	c       *workerCounters
	scratch [2048]byte // answers built from a frame before they replace it
}

func newWorker(dp *DataPlane, queue int, io []FrameIO) *Worker {
	n := len(io)
	w := &Worker{
		dp: dp, queue: queue, io: io,
		rx:     make([]Frame, BatchSize),
		hs:     make([]packet.Headers, BatchSize),
		pr:     make([]packet.DropReason, BatchSize),
		keys:   make([]packet.FlowKey, BatchSize),
		kidx:   make([]int32, BatchSize),
		hds:    make([]conntrack.Handle, BatchSize),
		found:  make([]conntrack.Handle, BatchSize),
		txSame: make([][]Frame, n),
		txCopy: make([][][]byte, n),
		rel:    make([][]Frame, n),
		c:      &workerCounters{ports: make([]portCounters, dp.cfg.MaxServicePorts)},
	}
	w.replies = newReplyLimiter(max(dp.cfg.LocalRepliesPerSecond, 0), dp.cfg.LocalReplyBurst)
	for i := range n {
		w.txSame[i] = make([]Frame, 0, BatchSize)
		w.txCopy[i] = make([][]byte, 0, BatchSize*n)
		w.rel[i] = make([]Frame, 0, BatchSize)
	}
	return w
}

// Poll takes one batch from every port's queue, processes it and transmits the results. now is
// the batch's time in nanoseconds (one clock read per batch, by the caller). It returns how many
// frames it received.
func (w *Worker) Poll(now int64) int {
	bc := batchContext{plan: w.dp.plan.Load(), now: now, gen: w.dp.l2.current()}
	// One atomic load per batch; nil (no capture armed) costs a nil check per frame.
	var ring *capture.Ring
	if cs := w.dp.capture.Load(); cs != nil {
		ring = cs.Ring(w.capIdx)
	}
	total := 0
	for p, io := range w.io {
		n := io.Receive(w.rx)
		if n == 0 {
			continue
		}
		total += n
		w.c.rx.add(uint64(n))
		w.lookupBatch(n, now)
		for i := range n {
			f := w.rx[i]
			if ring != nil {
				ring.Begin(f.Data, p, now)
			}
			v := w.processParsed(&bc, p, f.Data, i)
			if v.act == actDrop {
				if ring != nil {
					ring.End(false, nil, 0)
				}
				w.rel[p] = append(w.rel[p], f)
				continue
			}
			f.Data = f.Data[:v.length]
			if ring != nil {
				ring.End(true, f.Data, v.egress)
			}
			if v.egress == p {
				w.txSame[p] = append(w.txSame[p], f)
			} else {
				w.txCopy[v.egress] = append(w.txCopy[v.egress], f.Data)
				w.rel[p] = append(w.rel[p], f)
			}
		}
		if len(w.txSame[p]) > 0 {
			sent := io.Transmit(w.txSame[p])
			w.c.tx.add(uint64(sent))
			w.c.drops[ReasonTXFull].add(uint64(len(w.txSame[p]) - sent))
			w.txSame[p] = w.txSame[p][:0]
		}
		for q := range w.txCopy {
			if len(w.txCopy[q]) == 0 {
				continue
			}
			sent := w.io[q].TransmitCopies(w.txCopy[q])
			w.c.txCopies.add(uint64(sent))
			w.c.tx.add(uint64(sent))
			w.c.drops[ReasonTXFull].add(uint64(len(w.txCopy[q]) - sent))
			clear(w.txCopy[q])
			w.txCopy[q] = w.txCopy[q][:0]
		}
		if len(w.rel[p]) > 0 {
			io.Release(w.rel[p])
			w.rel[p] = w.rel[p][:0]
		}
	}
	if total > 0 {
		w.c.batches.inc()
		// Expiry work goes with received frames; a pass that found nothing leaves it to the
		// catch-up before the worker sleeps (Run). Walking the budget on every empty pass of a
		// spinning worker cost 2.6% of the core with one live flow.
		w.dp.ct.Expire(now, w.dp.cfg.ExpireBudget)
	}
	return total
}

func (w *Worker) drop(r Reason) verdict {
	w.c.drops[r].inc()
	return dropped
}

func (w *Worker) countPort(id uint32, bytes int) {
	if int(id) < len(w.c.ports) {
		pc := &w.c.ports[id]
		pc.packets.inc()
		pc.bytes.add(uint64(bytes))
	}
}

// parse decodes a frame and, unless disabled, verifies its IP and L4 checksums (as Linux
// conntrack does with nf_conntrack_checksum=1): a corrupted frame is dropped and counted, never
// forwarded with a checksum the rewrite would make look right.
func (w *Worker) parse(fr []byte, h *packet.Headers) packet.DropReason {
	r := packet.Parse(fr, h)
	if r == packet.OK && w.dp.cfg.VerifyChecksums && h.EtherType != packet.EtherTypeARP {
		r = packet.VerifyChecksums(fr, h)
	}
	return r
}

// lookupBatch parses the batch's n frames and looks up the keys of every TCP/UDP IPv4 frame in
// one conntrack.LookupBatch call, so that the cache misses of the whole batch overlap.
func (w *Worker) lookupBatch(n int, now int64) {
	m := 0
	for i := range n {
		h := &w.hs[i]
		w.pr[i] = w.parse(w.rx[i].Data, h)
		w.hds[i] = conntrack.Handle{}
		if w.pr[i] == packet.OK && h.EtherType == packet.EtherTypeIPv4 && !h.Inner.Valid &&
			(h.L4Proto == packet.ProtoTCP || h.L4Proto == packet.ProtoUDP) {
			w.keys[m] = h.Key
			w.kidx[m] = int32(i)
			m++
		}
	}
	if m == 0 {
		return
	}
	w.dp.ct.LookupBatch(w.keys[:m], now, w.found[:m])
	for j := range m {
		w.hds[w.kidx[j]] = w.found[j]
	}
}

// processParsed runs the pipeline on frame i of the batch, already parsed and looked up.
func (w *Worker) processParsed(bc *batchContext, in int, fr []byte, i int) verdict {
	if r := w.pr[i]; r != packet.OK {
		return w.drop(Reason(r))
	}
	return w.pipeline(bc, in, fr, &w.hs[i], w.hds[i])
}

// process parses and runs the pipeline on one frame received on port in (the unbatched form,
// for tests and benchmarks).
func (w *Worker) process(bc *batchContext, in int, fr []byte) verdict {
	h := &w.one
	if r := w.parse(fr, h); r != packet.OK {
		return w.drop(Reason(r))
	}
	var hd conntrack.Handle
	if h.EtherType == packet.EtherTypeIPv4 && !h.Inner.Valid && (h.L4Proto == packet.ProtoTCP || h.L4Proto == packet.ProtoUDP) {
		hd, _ = w.dp.ct.Lookup(&h.Key, bc.now)
	}
	return w.pipeline(bc, in, fr, h, hd)
}

// pipeline is the per-frame logic after parsing; hd is the conntrack lookup result of an IPv4
// TCP/UDP frame (invalid: a miss, or not looked up).
func (w *Worker) pipeline(bc *batchContext, in int, fr []byte, h *packet.Headers, hd conntrack.Handle) verdict {
	switch h.EtherType {
	case packet.EtherTypeARP:
		return w.arp(bc, in, fr, h)
	case packet.EtherTypeIPv6:
		return w.drop(ReasonIPv6)
	}
	if h.Inner.Valid {
		return w.icmpError(bc, in, fr, h)
	}
	if h.L4Proto == packet.ProtoICMP {
		return w.icmp(bc, in, fr, h)
	}
	if !hd.Valid() {
		return w.newFlow(bc, in, fr, h)
	}
	meta, ok := w.dp.ct.Meta(hd)
	if !ok {
		return w.newFlow(bc, in, fr, h)
	}
	if in != arrivalPort(hd.Dir(), &meta) {
		// Each direction of a flow comes from one side only: a frame of the flow on another
		// port (a spoofed reply from the client network, say) neither passes nor touches the
		// flow's state (so neither can its RST).
		return w.drop(ReasonWrongPort)
	}
	if hd.Dir() == conntrack.DirOriginal && h.L4Proto == packet.ProtoTCP &&
		h.TCPFlags&(packet.TCPFlagSYN|packet.TCPFlagACK|packet.TCPFlagRST) == packet.TCPFlagSYN &&
		(meta.State == conntrack.TCPTimeWait || meta.State == conntrack.TCPClose) {
		// A client reusing its port for a new connection (as Linux conntrack does for a SYN in
		// TIME_WAIT/CLOSE): the old flow ends, the SYN opens a new one with a fresh backend
		// choice and SNAT port.
		w.dp.ct.Delete(hd)
		return w.newFlow(bc, in, fr, h)
	}
	if hd.Dir() == conntrack.DirOriginal && !bc.plan.isAlive(meta.BackendID) {
		// The endpoint was removed by a reload: TCP ends with a RST to the client, UDP is
		// re-balanced at once.
		w.dp.ct.Delete(hd)
		if h.L4Proto == packet.ProtoTCP {
			w.c.drops[ReasonBackendGone].inc()
			return w.reject(bc, in, fr, h)
		}
		return w.newFlow(bc, in, fr, h)
	}
	return w.forward(bc, fr, h, hd, meta)
}

// forward translates a frame of a known flow and picks its egress port and MACs.
func (w *Worker) forward(bc *batchContext, fr []byte, h *packet.Headers, hd conntrack.Handle, meta conntrack.FlowMeta) verdict {
	if !w.dp.ct.Translate(hd, &w.out) {
		return w.drop(ReasonNoFrontend)
	}
	w.dp.ct.Update(hd, h.TCPFlags, bc.now)
	v := w.emit(bc, fr, h, hd.Dir(), &meta)
	if v.act == actTx {
		w.countPort(meta.ServiceID, v.length)
	}
	return v
}

// arrivalPort is the port frames of direction dir of a flow come from: the original direction's
// ingress port, and for the reply direction the port the original direction leaves by.
func arrivalPort(dir conntrack.Dir, meta *conntrack.FlowMeta) int {
	if dir == conntrack.DirReply {
		return int(meta.EgressIfindex)
	}
	return int(meta.IngressIfindex)
}

// emit rewrites a frame to the translation in w.out, on its way out of the flow's port for dir,
// with the next hop's MAC: the one step forward and icmpError share.
func (w *Worker) emit(bc *batchContext, fr []byte, h *packet.Headers, dir conntrack.Dir, meta *conntrack.FlowMeta) verdict {
	out := int(meta.EgressIfindex)
	if dir == conntrack.DirReply {
		out = int(meta.IngressIfindex)
	}
	if out >= len(w.io) {
		return w.drop(ReasonNoFrontend)
	}
	dst := w.out.DstAddr4()
	mac, ok := w.cache.get(w.dp.l2, binary.BigEndian.Uint32(dst[:]), out, bc.gen, bc.now)
	if !ok {
		w.dp.l2.probe(binary.BigEndian.Uint32(dst[:]))
		return w.drop(ReasonNoNeighbour)
	}
	if r := packet.NAT4(fr, h, w.out.SrcAddr4(), w.out.SrcPort, dst, w.out.DstPort); r != packet.OK {
		return w.drop(Reason(r))
	}
	packet.SetMACs(fr, w.dp.ports[out].MAC, mac)
	return transmit(out, len(fr))
}

// newFlow handles the first packet of a flow: frontend lookup, policy, backend choice, insert.
func (w *Worker) newFlow(bc *batchContext, in int, fr []byte, h *packet.Headers) verdict {
	plan := bc.plan
	k := &h.Key
	fe, ok := plan.front[frontKey{addr: k.DstAddr4(), port: k.DstPort, proto: k.Proto}]
	if !ok {
		return w.drop(ReasonNoFrontend)
	}
	sp := &plan.ports[fe.sp]
	src := k.SrcAddr4()
	if plan.martian4(src) {
		return w.drop(ReasonMartianSource)
	}
	internal := contains4(plan.internal, src)
	if fe.kind == kindClusterIP && !internal {
		return w.drop(ReasonOutsideCluster)
	}
	if w.dp.ports[in].Role == RoleExternal && internal {
		// A cluster source on the client network is spoofed, whatever it asks for.
		return w.drop(ReasonWrongPort)
	}
	switch fe.kind {
	case kindVIP:
		if len(sp.ranges) > 0 && !contains4(sp.ranges, src) {
			return w.drop(ReasonSourceRange)
		}
	}
	if k.Proto == packet.ProtoTCP && h.TCPFlags&(packet.TCPFlagSYN|packet.TCPFlagACK|packet.TCPFlagRST) != packet.TCPFlagSYN &&
		!w.dp.cfg.Conntrack.TCPLoosePickup {
		if h.TCPFlags&packet.TCPFlagRST != 0 {
			return w.drop(ReasonInvalidFirst)
		}
		// A segment of a connection this node does not know (its flow expired, or it was
		// opened through another node): answer with a RST so the client does not hang.
		w.c.drops[ReasonInvalidFirst].inc()
		return w.reject(bc, in, fr, h)
	}
	if sp.table == nil {
		w.c.drops[ReasonRejected].inc()
		return w.reject(bc, in, fr, h)
	}
	var hash uint64
	if sp.affinity {
		hash = maglev.HashAddr(packet.FamilyIPv4, &k.SrcAddr)
	} else {
		hash = maglev.HashFlow(k)
	}
	bi := sp.table.Lookup(hash)
	if bi < 0 || bi >= len(sp.pick) {
		w.c.drops[ReasonRejected].inc()
		return w.reject(bc, in, fr, h)
	}
	ep := &sp.eps[sp.pick[bi]]
	nf := &w.nf
	*nf = conntrack.NewFlow{
		Orig:           *k,
		BackendPort:    ep.port,
		ServiceID:      uint32(sp.id),
		BackendID:      ep.id,
		TCPFlags:       h.TCPFlags,
		IngressIfindex: uint16(in),
		EgressIfindex:  ep.egress,
	}
	copy(nf.BackendAddr[:4], ep.addr[:])
	if sp.etpLocal && fe.kind != kindClusterIP {
		nf.Flags |= conntrack.FlagNoSNAT
	} else if fe.kind == kindVIP && w.dp.cfg.FloatingSNAT {
		// The VIP itself is the source the backend sees: it moves with the VIP, so the
		// backend's replies reach whichever node holds the VIP after a failover.
		copy(nf.SNATAddr[:4], k.DstAddr[:4])
		// No local socket uses the VIP: every port above the well-known ones is free for SNAT.
		nf.SNATPortMin, nf.SNATPortMax = floatingSNATPortMin, 65535
	} else {
		sa := plan.snat[ep.egress]
		if !sa.ok {
			return w.drop(ReasonNoSNATAddr)
		}
		copy(nf.SNATAddr[:4], sa.addr[:])
	}
	if ep.terminating {
		nf.Flags |= conntrack.FlagTerminating
	}
	if !w.dp.srcLimit.Allow(packet.FamilyIPv4, &k.SrcAddr, bc.now) {
		return w.drop(ReasonSourceLimit)
	}
	hd, res := w.dp.ct.Insert(nf, bc.now)
	switch res {
	case conntrack.Inserted:
		w.c.newFlows.inc()
		if int(sp.id) < len(w.c.ports) {
			w.c.ports[sp.id].newFlows.inc()
		}
		if w.dp.ports[in].Role == RoleExternal && w.dp.cfg.LearnedMACMaxAge > 0 && plan.learnable(src) {
			var smac [6]byte
			copy(smac[:], fr[6:12])
			w.dp.l2.learn(binary.BigEndian.Uint32(src[:]), in, smac, bc.now)
		}
	case conntrack.InsertExists:
	case conntrack.InsertFull:
		return w.drop(ReasonTableFull)
	case conntrack.InsertNoPort, conntrack.InsertClash:
		return w.drop(ReasonNoSNATPort)
	default:
		return w.drop(ReasonInvalidFirst)
	}
	meta, ok := w.dp.ct.Meta(hd)
	if !ok {
		return w.drop(ReasonTableFull)
	}
	return w.forward(bc, fr, h, hd, meta)
}

// reject answers a packet to a Service port without endpoints (or of a removed backend) as
// kube-proxy does: TCP RST, UDP ICMP port unreachable. The answer replaces the frame.
func (w *Worker) reject(bc *batchContext, in int, fr []byte, h *packet.Headers) verdict {
	if h.L4Proto == packet.ProtoTCP && h.TCPFlags&packet.TCPFlagRST != 0 {
		return dropped
	}
	if !w.replies.allow(bc.now) {
		return w.drop(ReasonLocalReplyLimit)
	}
	scratch := w.scratch[:]
	var n int
	var err error
	switch h.L4Proto {
	case packet.ProtoTCP: // a RST was never answered (above)
		n, err = packet.BuildTCPReset(scratch, fr, h)
		if err == nil {
			w.c.resets.inc()
		}
	case packet.ProtoUDP:
		n, err = packet.BuildPortUnreachable4(scratch, fr, h)
		if err == nil {
			w.c.unreachables.inc()
		}
	default:
		return dropped
	}
	if err != nil || n > cap(fr) {
		return dropped
	}
	fr = fr[:n]
	copy(fr, scratch[:n])
	return transmit(in, n)
}

// arp answers ARP requests for held VIPs from this port's MAC.
func (w *Worker) arp(bc *batchContext, in int, fr []byte, h *packet.Headers) verdict {
	plan := bc.plan
	a := &h.ARP
	if (a.Op == packet.ARPReply || a.Op == packet.ARPRequest && a.SenderIP == a.TargetIP) && plan.vips[a.SenderIP] &&
		!w.dp.ownMAC(a.SenderHW) {
		select {
		case w.dp.conflicts <- VIPConflict{VIP: netip.AddrFrom4(a.SenderIP), MAC: a.SenderHW, Port: in}:
		default:
		}
		return w.drop(ReasonVIPConflict)
	}
	// A gratuitous ARP (sender = target) asks nothing: not answered.
	if a.Op != packet.ARPRequest || !plan.vips[a.TargetIP] || a.SenderIP == a.TargetIP {
		return w.drop(ReasonARPIgnored)
	}
	if !w.replies.allow(bc.now) {
		return w.drop(ReasonLocalReplyLimit)
	}
	req := *a
	n, err := packet.BuildARPReply(fr[:cap(fr)], &req, w.dp.ports[in].MAC)
	if err != nil {
		return w.drop(ReasonARPIgnored)
	}
	w.c.arpReplies.inc()
	return transmit(in, n)
}

// icmp answers echo requests to ClusterIPs (from inside the cluster) and held VIPs.
func (w *Worker) icmp(bc *batchContext, in int, fr []byte, h *packet.Headers) verdict {
	plan := bc.plan
	dst := h.Key.DstAddr4()
	if h.ICMPType != packet.ICMPEchoRequest || !plan.echo[dst] {
		return w.drop(ReasonICMPIgnored)
	}
	if plan.martian4(h.Key.SrcAddr4()) {
		return w.drop(ReasonMartianSource)
	}
	if !plan.vips[dst] {
		if !contains4(plan.internal, h.Key.SrcAddr4()) {
			return w.drop(ReasonOutsideCluster)
		}
		if w.dp.ports[in].Role == RoleExternal {
			return w.drop(ReasonWrongPort)
		}
	}
	if !w.replies.allow(bc.now) {
		return w.drop(ReasonLocalReplyLimit)
	}
	if err := packet.EchoReplyInPlace(fr, h); err != nil {
		return w.drop(ReasonICMPIgnored)
	}
	w.c.echoReplies.inc()
	return transmit(in, len(fr))
}

// icmpError translates an ICMP error about a tracked flow back towards the flow's other end. It
// is taken only from the side the quoted packet was sent to, that is when it arrives on the
// port that packet left by: a client cannot make the node relay errors about the backend side.
func (w *Worker) icmpError(bc *batchContext, in int, fr []byte, h *packet.Headers) verdict {
	rev := h.Inner.Key.Reverse()
	hd, ok := w.dp.ct.Lookup(&rev, bc.now)
	if !ok {
		return w.drop(ReasonICMPIgnored)
	}
	meta, ok := w.dp.ct.Meta(hd)
	if !ok {
		return w.drop(ReasonICMPIgnored)
	}
	if in != arrivalPort(hd.Dir(), &meta) {
		return w.drop(ReasonWrongPort)
	}
	if !w.dp.ct.Translate(hd, &w.out) {
		return w.drop(ReasonICMPIgnored)
	}
	v := w.emit(bc, fr, h, hd.Dir(), &meta)
	if v.act == actTx {
		w.c.icmpTranslated.inc()
	}
	return v
}

// prefix4 is an IPv4 prefix as address and mask words, for a per-packet membership test.
type prefix4 struct{ addr, mask uint32 }

func toPrefix4(ps []netip.Prefix) []prefix4 {
	out := make([]prefix4, 0, len(ps))
	for _, p := range ps {
		if !p.Addr().Is4() {
			continue
		}
		a := p.Masked().Addr().As4()
		var mask uint32
		if p.Bits() > 0 {
			mask = ^uint32(0) << (32 - p.Bits())
		}
		out = append(out, prefix4{addr: binary.BigEndian.Uint32(a[:]), mask: mask})
	}
	return out
}

// contains4 reports whether a is inside one of the prefixes.
func contains4(ps []prefix4, a [4]byte) bool {
	x := binary.BigEndian.Uint32(a[:])
	for _, p := range ps {
		if x&p.mask == p.addr {
			return true
		}
	}
	return false
}
