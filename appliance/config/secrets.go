package config

import (
	"bytes"
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

// ErrNoAgentKey is returned by AgentKey for a config with cluster.agents.enabled and neither an
// agent key nor cluster.agents.insecure: true.
var ErrNoAgentKey = errors.New("cluster.agents.secretKeyFile: Required value: the agent cluster needs its own key, or anyone " +
	"who reaches cluster.agents.bind can announce endpoints (make one with `appliance keygen FILE`, a different file " +
	"from cluster.secretKeyFile); set cluster.agents.insecure: true to run without one on purpose")

// AgentKey reads the agent cluster's gossip key: nil when agents are disabled or with
// cluster.agents.insecure: true; an error when the file is missing, unreadable, readable by
// others or not a key, when neither is set, or when it is the appliances' key (agents would
// then hold the key that makes a member an appliance).
func (c *Config) AgentKey() ([]byte, error) {
	a := c.Cluster.Agents
	switch {
	case !a.Enabled || a.Insecure:
		return nil, nil
	case a.SecretKeyFile == "":
		return nil, ErrNoAgentKey
	}
	k, err := cluster.ReadKeyFile(a.SecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.agents.secretKeyFile: %w", err)
	}
	if c.Cluster.SecretKeyFile != "" {
		if ck, err := cluster.ReadKeyFile(c.Cluster.SecretKeyFile); err == nil && bytes.Equal(ck, k) {
			return nil, fmt.Errorf("cluster.agents.secretKeyFile: %s holds the appliances' key (cluster.secretKeyFile): agents must get a key of their own", a.SecretKeyFile)
		}
	}
	return k, nil
}
