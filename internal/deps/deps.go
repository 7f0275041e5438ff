package deps
import (
 _ "github.com/asavie/xdp"
 _ "github.com/cilium/ebpf"
 _ "github.com/cilium/ebpf/asm"
 _ "github.com/cilium/ebpf/link"
 _ "github.com/google/gopacket"
 _ "github.com/google/gopacket/layers"
 _ "github.com/google/gopacket/pcapgo"
 _ "github.com/hashicorp/memberlist"
 _ "github.com/vishvananda/netlink"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "k8s.io/api/core/v1"
 _ "k8s.io/api/discovery/v1"
 _ "k8s.io/apimachinery/pkg/apis/meta/v1"
 _ "sigs.k8s.io/yaml"
)
