package compare

import (
	"github.com/xdpsvc/lb/bench/outputs"
)

// Run is one measurement: one system, one scenario, one round.
type Run struct {
	// Round is 1-based.
	Round    int    `json:"round"`
	System   System `json:"system"`
	Scenario string `json:"scenario"`
	Kind     Kind   `json:"kind"`
	// Offered is what the generator got onto the wire (sent minus device drops), OfferedPPS per second.
	Offered    uint64  `json:"offered,omitempty"`
	OfferedPPS float64 `json:"offeredPPS,omitempty"`
	// Received is what the sinks on the backends counted; ReceivedPPS per second of the generator's run.
	Received    uint64  `json:"received,omitempty"`
	ReceivedPPS float64 `json:"receivedPPS,omitempty"`
	// ReceivedBitsPerSecond is the received frames' bytes (without FCS) × 8 per second.
	ReceivedBitsPerSecond float64 `json:"receivedBitsPerSecond,omitempty"`
	// ElapsedSeconds is the generator's run time.
	ElapsedSeconds float64 `json:"elapsedSeconds,omitempty"`
	// StoppedBy is the bound that ended the generator (count, duration or context).
	StoppedBy string `json:"stoppedBy,omitempty"`
	// CoreBusySeconds is the non-idle time of the system-under-test core over the run (/proc/stat): its
	// process, its NAPI threads, the softirqs on that core (including the switch path to the backends and the
	// sinks), and anything else the machine ran there.
	CoreBusySeconds float64 `json:"coreBusySeconds,omitempty"`
	// ProcessCPUSeconds is the appliance's or the forwarder's utime+stime (0 for nftables: no process).
	ProcessCPUSeconds float64 `json:"processCPUSeconds,omitempty"`
	// NAPICPUSeconds is the utime+stime of the node interfaces' threaded-NAPI kernel threads.
	NAPICPUSeconds float64 `json:"napiCPUSeconds,omitempty"`
	// NsPerPacket is CoreBusySeconds per received packet, in nanoseconds.
	NsPerPacket float64 `json:"nsPerPacket,omitempty"`
	// LatencyMicros are the round-trip times of the latency scenario, in order.
	LatencyMicros []float64 `json:"latencyMicros,omitempty"`
	// P50Micros, P99Micros are their percentiles; LatencyErrors counts requests that failed or timed out.
	P50Micros     float64 `json:"p50Micros,omitempty"`
	P99Micros     float64 `json:"p99Micros,omitempty"`
	LatencyErrors int     `json:"latencyErrors,omitempty"`
	// ApplianceCounters are the appliance's own counters over the run (deltas of its /metrics
	// appliance_received/transmitted/dropped_packets_total, drops by reason): where its packets went.
	ApplianceCounters map[string]float64 `json:"applianceCounters,omitempty"`
	// Skipped says why a system does not run a scenario (e.g. the ceiling does no NAT, so no TCP round trip).
	Skipped string `json:"skipped,omitempty"`
	// Error is a measurement that failed; the run goes on.
	Error string `json:"error,omitempty"`
}

// Headline is the scenario's main figure: received pps (conn/s for SYN), or p50 in µs for latency.
func (r Run) Headline() float64 {
	if r.Kind == KindLatency {
		return r.P50Micros
	}
	return r.ReceivedPPS
}

// Result is everything a comparison measured.
type Result struct {
	outputs.Provenance
	// Rounds, DurationSeconds and MaxPackets are the bounds of each measurement.
	Rounds          int     `json:"rounds"`
	DurationSeconds float64 `json:"durationSeconds"`
	MaxPackets      uint64  `json:"maxPackets"`
	// Scenarios and Systems are what ran, in order.
	Scenarios []Scenario `json:"scenarios"`
	Systems   []System   `json:"systems"`
	// Modes are the XDP and AF_XDP modes per system, as the system reported them.
	Modes map[System]string `json:"modes"`
	// Pinning says which core ran what.
	Pinning string `json:"pinning"`
	// Notes are facts a reader needs (what could not be measured, and why).
	Notes []string `json:"notes"`
	// Runs are every raw figure of every round.
	Runs []Run `json:"runs"`
	// Nftables is the ruleset the kernel system loaded.
	Nftables string `json:"nftables"`
}
