package config

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/xdpsvc/lb/cluster"
)

// ErrNoClusterKey is returned by ClusterKey for a config that has neither a gossip key nor
// cluster.insecure: true.
var ErrNoClusterKey = errors.New("cluster.secretKeyFile: Required value: gossip needs a key, or anyone who reaches " +
	"cluster.bind can join as an appliance and take the VIPs (make one with `appliance keygen FILE`); " +
	"set cluster.insecure: true to run without one on purpose")

// ClusterKey reads the cluster's gossip key: nil with cluster.insecure: true, an error when the
// key file is missing, unreadable, readable by others or not a key, or when neither is set.
// `appliance check` and `appliance run` both call it, so that check accepts exactly what run
// starts with.
func (c *Config) ClusterKey() ([]byte, error) {
	cc := c.Cluster
	switch {
	case cc.Insecure:
		return nil, nil
	case cc.SecretKeyFile == "":
		return nil, ErrNoClusterKey
	}
	k, err := cluster.ReadKeyFile(cc.SecretKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cluster.secretKeyFile: %w (make it with `appliance keygen %s`, the same file on every appliance)", err, cc.SecretKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster.secretKeyFile: %w", err)
	}
	return k, nil
}
