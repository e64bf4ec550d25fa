"""The local node's rendered configuration: well-formed, and every address it names lies inside
the node's own namespace (loopback, the node's dummy address, pods, Services): a typo here
would send traffic somewhere the network rule forbids."""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from pathlib import Path

import pytest

from pagestream.stack.node import config
from pagestream.stack.node.namespace import setup_script

LAYOUT = config.NodeLayout(Path("/state/node"), pause_image="localhost/pagestream-pause:abc")
BINS = Path("/cache/go/k8s")
# "Bind every address of the namespace", and the pods' default route towards the bridge.
WILDCARDS = {"0.0.0.0", "0.0.0.0/0"}
ALLOWED = [
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network(f"{config.NODE_IP}/32"),
    ipaddress.ip_network(config.POD_CIDR),
    ipaddress.ip_network(config.SERVICE_CIDR),
]
IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b")


def rendered() -> dict[str, str]:
    return {
        "containerd.toml": config.containerd_config(LAYOUT),
        "cni": json.dumps(config.cni_conflist()),
        "kubelet": json.dumps(config.kubelet_config(LAYOUT)),
        "kube-proxy": json.dumps(config.kube_proxy_config(LAYOUT)),
        "coredns": json.dumps(config.coredns_manifests("localhost/pagestream-coredns:abc")),
        "storage": json.dumps(config.storage_class()),
        "args": json.dumps(
            [
                config.apiserver_args(LAYOUT, BINS),
                config.controller_manager_args(LAYOUT, BINS),
                config.scheduler_args(LAYOUT, BINS),
                config.etcd_args(LAYOUT, BINS),
                config.kubelet_args(LAYOUT, BINS),
                config.kube_proxy_args(LAYOUT, BINS),
                config.provisioner_args(LAYOUT, BINS / "provisioner"),
            ]
        ),
        "setup": setup_script(LAYOUT),
    }


@pytest.mark.parametrize("name", sorted(rendered()))
def test_every_address_is_inside_the_node(name: str) -> None:
    found = IP.findall(rendered()[name])
    assert found or name in {"containerd.toml", "coredns", "storage"}
    for text in set(found) - WILDCARDS:
        net = ipaddress.ip_network(text, strict=False)
        assert any(net.subnet_of(allowed) for allowed in ALLOWED), f"{name}: {text}"


def test_containerd_config_parses_and_passes_the_vm_traps() -> None:
    cfg = tomllib.loads(config.containerd_config(LAYOUT))
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "localhost/pagestream-pause:abc"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cfg["root"] == "/state/node/containerd"
    assert cri["cni"]["conf_dir"] == "/state/node/etc/cni"


def test_kubelet_writes_no_machine_wide_setting() -> None:
    kubelet = config.kubelet_config(LAYOUT)
    assert kubelet["oomScoreAdj"] == 0
    assert kubelet["cgroupRoot"].startswith("/pagestream-node-")
    other = config.NodeLayout(Path("/elsewhere/node"))
    assert config.kubelet_config(other)["cgroupRoot"] != kubelet["cgroupRoot"]
    proxy = config.kube_proxy_config(LAYOUT)
    assert proxy["conntrack"]["maxPerCore"] == 0
    assert proxy["iptables"]["localhostNodePorts"] is False
    # The sysctls the kubelet checks are shown to it read-only, each with the value it wants.
    script = setup_script(LAYOUT)
    for key in config.KUBELET_SYSCTLS:
        assert f"mount -o remount,bind,ro /proc/sys/{key}" in script
    # Only per-namespace sysctls are written.
    written = re.findall(r"> /proc/sys/(\S+)", script)
    assert sorted(written) == sorted(config.NAMESPACE_SYSCTLS)
    assert all(key.startswith("net/") for key in written)


def test_component_kubeconfigs_name_files_inside_the_node() -> None:
    kc = config.kubeconfig(
        server="https://127.0.0.1:6443", pki=LAYOUT.pki, user="kubelet", cert="kubelet"
    )
    user = kc["users"][0]["user"]
    assert user["client-certificate"] == "/state/node/pki/kubelet.crt"
    assert kc["clusters"][0]["cluster"]["certificate-authority"] == "/state/node/pki/ca.crt"
