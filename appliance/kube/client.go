package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/xdpsvc/lb/appliance/config"
)

// UserAgent is what the appliance calls itself in API requests.
const UserAgent = "xdpsvc-appliance"

// RESTConfig returns the client configuration for services.kubeconfig or services.inCluster.
// It reads files but does not contact the API server.
func RESTConfig(sc config.ServicesConfig) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	switch {
	case sc.Kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", sc.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", sc.Kubeconfig, err)
		}
	case sc.InCluster:
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("load in-cluster credentials: %w", err)
		}
	default:
		return nil, errors.New("kubernetes client: neither services.kubeconfig nor services.inCluster is set")
	}
	rc.UserAgent = UserAgent
	return rc, nil
}

// NewClient returns a clientset for services.kubeconfig or services.inCluster.
func NewClient(sc config.ServicesConfig) (kubernetes.Interface, error) {
	rc, err := RESTConfig(sc)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client %s: %w", rc.Host, err)
	}
	return cs, nil
}
