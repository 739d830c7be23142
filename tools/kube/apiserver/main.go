// kube-apiserver with an embedded etcd, for the engine tier: one process is a whole Kubernetes API (no nodes,
// no kubelet). The apiserver is k8s.io/kubernetes' own command, unchanged; when EMBEDDED_ETCD_DIR is set, an
// etcd server (go.etcd.io/etcd/server/v3/embed) starts first with its data in that folder, listening on
// EMBEDDED_ETCD_CLIENT_URL (peers on EMBEDDED_ETCD_PEER_URL), and the apiserver is pointed at it with its usual
// --etcd-servers flag.
package main

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func startEtcd(dir, clientURL, peerURL string) (*embed.Etcd, error) {
	client, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("EMBEDDED_ETCD_CLIENT_URL: %w", err)
	}
	peer, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("EMBEDDED_ETCD_PEER_URL: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.LogLevel = "error"
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-etcd.Server.ReadyNotify():
		return etcd, nil
	case <-time.After(60 * time.Second):
		etcd.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 60 s")
	}
}

func main() {
	var etcd *embed.Etcd
	if dir := os.Getenv("EMBEDDED_ETCD_DIR"); dir != "" {
		var err error
		etcd, err = startEtcd(dir, os.Getenv("EMBEDDED_ETCD_CLIENT_URL"), os.Getenv("EMBEDDED_ETCD_PEER_URL"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "embedded etcd:", err)
			os.Exit(1)
		}
	}
	code := cli.Run(app.NewAPIServerCommand())
	if etcd != nil {
		etcd.Close()
	}
	os.Exit(code)
}
