// Package daemon is `appliance run`: it loads the config and its Services (manifest files, or
// the Kubernetes API with services.kubeconfig/inCluster), builds and persists the desired state,
// joins the appliance cluster, opens the AF_XDP data plane on the configured interfaces, serves
// the admin API, reloads on SIGHUP or a changed manifest file, and shuts down cleanly on
// SIGINT/SIGTERM: VIPs handed over (graceful leave), workers stopped, XDP programs detached,
// sockets closed.
//
// Cluster behaviour: a LoadBalancer VIP is served only while the cluster ranks this node first
// for it (cluster.Node.Holds); an ownership change recompiles the data-plane plan and steering
// maps and announces gained VIPs with repeated gratuitous ARP on every interface. Every
// flowSyncInterval the node sends its new and changed flows (conntrack export records) to the
// other appliances over memberlist's TCP channel and imports theirs; together with the VIP
// being the floating SNAT source of its own flows, this keeps established connections alive
// when a VIP moves.
//
// Trust: gossip runs with the cluster key (config.ClusterKey; without one only with
// cluster.insecure, logged as a WARN at start) on a cluster-role interface's address unless
// cluster.bind says otherwise. Health reports and flow-sync messages are taken only from live
// appliance members (cluster.Node.HandleFrom's sender, IsLiveAppliance), a health report only
// for its own sender, and each message type has a size limit. In API mode one node writes each
// Service status: the VIP's holder, for a pending Service the first live appliance by name.
//
// Lifecycle: Run is newNode (config, ports, state, health checking, flow sync, metrics; no
// goroutine), initialSnapshot, start (cluster join, data plane, I/O and steering maps, admin API,
// goroutines) and serve (the event loop). One teardown, node.stop, stops whatever start started
// in one documented order (leave the cluster while the data plane still serves, end the
// goroutines, end captures and close the admin API, close the I/O, close the neighbour
// resolver); it also runs when start fails halfway.
//
// # Concurrency
//
// One goroutine per data-plane worker (queue index), the admin API server, the
// cluster's own, the conflict watcher, the flow-sync sender and warm-up, the health prober and
// its gossip loop, the neighbour resolver and its pruning ticker, the Kubernetes watcher in API
// mode, and the control goroutine running Run, which alone builds snapshots, applies them, and
// updates the steering programs. node's fields are grouped by owner: control (control goroutine, no lock), events
// (channels into the loop), view (what is served, behind its RWMutex, read by the admin API),
// running (start and stop). Health checking and flow sync see the cluster, the plan's owner
// and the flow table only through the small interfaces of gossip.go. Nothing here runs per
// packet.
package daemon
