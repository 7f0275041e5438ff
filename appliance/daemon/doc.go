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
// flowSyncInterval (250 ms) the node sends its new and changed flows (conntrack export records) to the
// other appliances over memberlist's TCP channel and imports theirs; together with the VIP
// being the floating SNAT source of its own flows, this keeps established connections alive
// when a VIP moves.
//
// Goroutines: one per data-plane worker (queue index), the admin API server, the cluster's own,
// the flow-sync sender, the neighbour resolver, the Kubernetes watcher in API mode, and the
// control goroutine running Run, which alone builds snapshots, applies them, and updates the
// steering programs. Nothing here runs per packet.
package daemon
