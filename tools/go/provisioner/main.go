// pagestream-provisioner: dynamic PersistentVolumes for the local node, as a folder each on the
// node's disk. It speaks the provisioning protocol through sig-storage-lib-external-provisioner
// (claims of its StorageClass get a hostPath volume pinned to the node; Delete removes the
// folder), which is what kind's local-path-provisioner does, and what this machine's node needs
// for CloudNativePG's and the checkpoints' claims to bind.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

type hostPathProvisioner struct {
	root string
	node string
}

func (p *hostPathProvisioner) Provision(
	ctx context.Context, opts controller.ProvisionOptions,
) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	dir := filepath.Join(p.root, opts.PVName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("creating %s: %w", dir, err)
	}
	// Pods run as whatever non-root user their image or securityContext says, and fsGroup does
	// not apply to hostPath volumes: the folder must be writable for any of them.
	if err := os.Chmod(dir, 0o1777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	kind := v1.HostPathDirectory
	reclaim := v1.PersistentVolumeReclaimDelete
	if opts.StorageClass.ReclaimPolicy != nil {
		reclaim = *opts.StorageClass.ReclaimPolicy
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   opts.PVC.Spec.AccessModes,
			VolumeMode:                    opts.PVC.Spec.VolumeMode,
			Capacity: v1.ResourceList{
				v1.ResourceStorage: opts.PVC.Spec.Resources.Requests[v1.ResourceStorage],
			},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: dir, Type: &kind},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{p.node},
				}}}},
			}},
		},
	}
	return pv, controller.ProvisioningFinished, nil
}

func (p *hostPathProvisioner) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.HostPath == nil || filepath.Dir(pv.Spec.HostPath.Path) != p.root {
		return fmt.Errorf("%s is not a volume of this provisioner", pv.Name)
	}
	return os.RemoveAll(pv.Spec.HostPath.Path)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	root := flag.String("root", "", "folder holding one folder per volume")
	node := flag.String("node", "", "the node's name (volumes are pinned to it)")
	name := flag.String("name", "pagestream.dev/hostpath", "provisioner name, as StorageClasses name it")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *root == "" || *node == "" {
		klog.Fatal("--kubeconfig, --root and --node are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}
	if err := os.MkdirAll(*root, 0o755); err != nil {
		klog.Fatalf("root: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	pc := controller.NewProvisionController(
		ctx, client, *name, &hostPathProvisioner{root: *root, node: *node},
		controller.LeaderElection(false),
	)
	klog.Infof("provisioning %s volumes under %s", *name, *root)
	pc.Run(ctx)
}
