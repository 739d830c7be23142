// kube-controller-manager for the engine tier, built from k8s.io/kubernetes unchanged. The tier runs only the
// garbage collector, namespace and serviceaccount controllers: without the garbage collector every delete of an
// object with foreground-deletion finalizers waits ten minutes.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
