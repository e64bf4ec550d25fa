"""What the local node's components are told: pure renderers from a :class:`NodeLayout` to
config files and manifests (no processes, no clients; unit-tested).

Every address here lives inside the node's own network namespace, which has no route out: the
host's routes, addresses, iptables rules and sysctls are never touched. Paths a component
hard-codes (``/run/containerd``, ``/var/log/pods``, ``/var/lib/cni``) are redirected by the
node's private mounts (pagestream.stack.node.namespace), never created on the host.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "pagestream-node"
# The node's one address, on a link inside its namespace. Pods reach the API server here
# (the `kubernetes` Service's endpoint), and the kubelet serves here.
NODE_IP = "10.200.0.2"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_PORT = 6443
ETCD_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
PROXY_HEALTHZ_PORT = 10256
PROXY_METRICS_PORT = 10249
SCHEDULER_PORT = 10259
CONTROLLER_MANAGER_PORT = 10257
BRIDGE = "cni0"
NODE_LINK = "pagestream0"
# What the kubelet would otherwise write machine-wide (kubelet's setupKernelTunables); the
# node's mount namespace shows it these values read-only, so it has nothing to change.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
# Per network namespace, so set inside the node's only: bridged pod traffic passes iptables
# (Services between pods on the one bridge), and the node routes between pods and Services.
NAMESPACE_SYSCTLS = {
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/ipv4/ip_forward": "1",
}


@dataclass(frozen=True)
class NodeLayout:
    """Where one node keeps its state (``home``) and finds its images' references."""

    home: Path
    pause_image: str = "localhost/pagestream-pause:latest"

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def etc(self) -> Path:
        return self.home / "etc"

    @property
    def containerd_root(self) -> Path:
        return self.home / "containerd"

    @property
    def containerd_socket(self) -> Path:
        # Under the private /run (namespace.py): containerd 1.6 puts shim sockets in
        # /run/containerd/s whatever its state dir, and a socket path must stay short.
        return Path("/run/containerd/containerd.sock")

    @property
    def kubelet_root(self) -> Path:
        return self.home / "kubelet"

    @property
    def etcd_data(self) -> Path:
        return self.home / "etcd"

    @property
    def cni_conf_dir(self) -> Path:
        return self.etc / "cni"

    @property
    def sysctl_dir(self) -> Path:
        return self.etc / "sysctl"

    @property
    def resolv_conf(self) -> Path:
        return self.etc / "resolv.conf"

    def kubeconfig(self, user: str) -> Path:
        """Kubeconfig of a component inside the node (server on the namespace's loopback)."""
        return self.etc / f"{user}.kubeconfig"

    @property
    def cgroup_root(self) -> str:
        # Pods' cgroups under one root of this node's own (named after its state folder, so two
        # nodes never share one): teardown removes exactly that tree.
        return "/pagestream-node-" + hashlib.sha256(str(self.home).encode()).hexdigest()[:10]


def containerd_config(layout: NodeLayout) -> str:
    """containerd 1.6's config (version 2): CRI with runc, CNI from Debian's plugins."""
    return f"""version = 2
root = "{layout.containerd_root}"
state = "/run/containerd"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{layout.containerd_socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{layout.pause_image}"
  # No CAP_SYS_RESOURCE on this VM: never ask runc to lower a container's oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under containerd's private state, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.cni_conf_dir}"
"""


def cni_conflist() -> dict[str, Any]:
    """One bridge for all pods, host-local addresses, hairpin so a pod reaches itself through
    its own Service, portmap for hostPort."""
    return {
        "cniVersion": "1.0.0",
        "name": "pagestream",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # The namespace has no way out, so nothing to masquerade to.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: NodeLayout) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        # The host is cgroup v1 (hybrid) without systemd as pid 1.
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_root,
        "failCgroupV1": False,
        # The VM lacks CAP_SYS_RESOURCE: a negative oom_score_adj cannot be set.
        "oomScoreAdj": 0,
        # The machine-wide sysctls it wants are shown to it read-only (KUBELET_SYSCTLS).
        "protectKernelDefaults": False,
        "failSwapOn": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # Pods with dnsPolicy Default get no upstream resolver: there is nothing to reach.
        "resolvConf": str(layout.resolv_conf),
        "staticPodPath": "",
        "serializeImagePulls": False,
        # Images are imported, never pulled: garbage-collecting them would break pods.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "maxPods": 110,
        "podPidsLimit": 4096,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "runtimeRequestTimeout": "5m",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(layout: NodeLayout) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{PROXY_METRICS_PORT}",
        "oomScoreAdj": 0,
        # Leave conntrack's sysctls alone: the table size is machine-wide.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # NodePorts on 127.0.0.1 need route_localnet; not wanted.
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
    }


def kubeconfig(*, server: str, pki: Path, user: str, cert: str) -> dict[str, Any]:
    """A kubeconfig that names its files (not inline data): components reread nothing."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pagestream-node",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{cert}.crt"),
                    "client-key": str(pki / f"{cert}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "pagestream-node", "context": {"cluster": "pagestream-node", "user": user}}
        ],
        "current-context": "pagestream-node",
    }


def apiserver_args(layout: NodeLayout, bins: Path) -> list[str]:
    pki = layout.pki
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--secure-port={APISERVER_PORT}",
        "--bind-address=0.0.0.0",
        f"--advertise-address={NODE_IP}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
        "--v=0",
    ]


def controller_manager_args(layout: NodeLayout, bins: Path) -> list[str]:
    pki = layout.pki
    return [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={layout.kubeconfig('kube-controller-manager')}",
        f"--authentication-kubeconfig={layout.kubeconfig('kube-controller-manager')}",
        f"--authorization-kubeconfig={layout.kubeconfig('kube-controller-manager')}",
        "--bind-address=127.0.0.1",
        f"--secure-port={CONTROLLER_MANAGER_PORT}",
        f"--cert-dir={layout.home / 'controller-manager-certs'}",
        # Tokens for service accounts, and the CA they trust, in every namespace.
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allocate-node-cidrs=false",
        "--leader-elect=false",
        "--profiling=false",
        "--v=0",
    ]


def scheduler_args(layout: NodeLayout, bins: Path) -> list[str]:
    kubeconfig_path = layout.kubeconfig("kube-scheduler")
    return [
        str(bins / "kube-scheduler"),
        f"--kubeconfig={kubeconfig_path}",
        f"--authentication-kubeconfig={kubeconfig_path}",
        f"--authorization-kubeconfig={kubeconfig_path}",
        "--bind-address=127.0.0.1",
        f"--secure-port={SCHEDULER_PORT}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=0",
    ]


def etcd_args(layout: NodeLayout, bins: Path) -> list[str]:
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    client = f"http://127.0.0.1:{ETCD_PORT}"
    return [
        str(bins / "etcd"),
        "--name=pagestream-node",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=pagestream-node={peer}",
        # A development node: speed over durability, as kind's etcd on tmpfs.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def kubelet_args(layout: NodeLayout, bins: Path) -> list[str]:
    return [
        str(bins / "kubelet"),
        f"--config={layout.etc / 'kubelet.yaml'}",
        f"--kubeconfig={layout.kubeconfig('kubelet')}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        "--v=0",
    ]


def kube_proxy_args(layout: NodeLayout, bins: Path) -> list[str]:
    return [str(bins / "kube-proxy"), f"--config={layout.etc / 'kube-proxy.yaml'}", "--v=0"]


PROVISIONER_NAME = "pagestream.dev/hostpath"


def provisioner_args(layout: NodeLayout, binary: Path) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={layout.kubeconfig('provisioner')}",
        f"--root={layout.home / 'volumes'}",
        f"--node={NODE_NAME}",
        f"--name={PROVISIONER_NAME}",
    ]


def storage_class() -> dict[str, Any]:
    """The default StorageClass: a folder on the node per claim, bound once a pod needs it."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER_NAME,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def containerd_args(layout: NodeLayout) -> list[str]:
    return ["containerd", f"--config={layout.etc / 'containerd.toml'}"]


def coredns_manifests(image: str) -> list[dict[str, Any]]:
    """Cluster DNS: CoreDNS (its Go module, in an image of the project's) behind the kube-dns
    Service. It answers for the cluster domain only; there is no upstream to forward to."""
    labels = {"k8s-app": "kube-dns"}
    corefile = f""".:1053 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
    loop
    reload
}}
"""
    meta = {"namespace": "kube-system", "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns", "labels": labels},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns", "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", **meta},
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 1053, "protocol": "TCP"},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "periodSeconds": 10,
                                },
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", **meta},
            "spec": {
                "selector": labels,
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]
