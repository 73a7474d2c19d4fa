"""A pod reaches another pod through a Service's DNS name in the suite's cluster.

The Service, its ClusterIP (from the apiserver's loopback range) and the pods are the real
API's; the routing and the names are OURS, not kube-proxy's and not cluster DNS
(backends/service_proxy.py says why neither can run here): the service proxy listens on each
loopback ``ClusterIP:port`` and forwards to a ready pod the selector picks, and the node agent
gives each container an ``/etc/hosts`` with the Services' names.  These checks keep that
stand-in honest, since the deployment test's kernels reach the server's response port through
it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from backends.k8s_cluster import KERNEL_IMAGE, K8sCluster, ensure_namespace, raw

NAMESPACE = "gp-services-test"

# A pod's whole program: answer each connection with its pod name and what it was sent.
ECHO = textwrap.dedent(
    """
    import os, socket, sys
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    while True:
        conn, _ = server.accept()
        with conn:
            conn.sendall(f"{os.environ['POD']}:{conn.recv(100).decode()}".encode())
    """
)
# The client pod: resolve each name, send "hi" to the Service port, write what came back.
CLIENT = textwrap.dedent(
    """
    import json, socket, sys
    out, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    result = {}
    for name in names:
        with socket.create_connection((name, port), timeout=10) as conn:
            conn.sendall(b"hi")
            result[name] = [socket.gethostbyname(name), conn.recv(100).decode()]
    open(out, "w").write(json.dumps(result))
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pod(name: str, labels: dict[str, str], argv: list[str], ports: list[Any]) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": KERNEL_IMAGE,
        "command": [sys.executable, *argv],
        "env": [{"name": "POD", "value": name}],
        "ports": ports,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def running(api: Any, name: str) -> bool:
    status = raw(api, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}").get("status") or {}
    return bool(status.get("phase") == "Running")


def accepts(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def test_pod_reaches_a_service_by_name_through_its_cluster_ip(
    k8s_cluster: K8sCluster,
    tmp_path: Path,
) -> None:
    api = k8s_cluster.api_client()
    ensure_namespace(api, NAMESPACE)
    run = uuid.uuid4().hex[:6]
    app = {"app": f"echo-{run}"}
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
    service_name = f"echo-{run}"
    created: list[str] = []
    try:
        # two backends behind one Service, found by the named target port
        for index in range(2):
            port = free_port()
            name = f"echo-{run}-{index}"
            ports = [{"name": "echo", "containerPort": port}]
            raw(api, "POST", pods, pod(name, app, ["-c", ECHO, str(port)], ports))
            created.append(name)
        service = raw(
            api,
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service_name},
                "spec": {"selector": app, "ports": [{"port": 7000, "targetPort": "echo"}]},
            },
        )
        cluster_ip = service["spec"]["clusterIP"]
        assert ipaddress.ip_address(cluster_ip).is_loopback, cluster_ip
        for name in created:
            wait_for(lambda name=name: running(api, name), f"pod {name} running")
        wait_for(lambda: accepts((cluster_ip, 7000)), "the service proxy listening")

        out = tmp_path / "reply.json"
        names = [f"{service_name}.{NAMESPACE}.svc.cluster.local", f"{service_name}.{NAMESPACE}.svc"]
        names += [service_name]  # the short name: the client is in the Service's namespace
        client = f"client-{run}"
        raw(api, "POST", pods, pod(client, {}, ["-c", CLIENT, str(out), "7000", *names], []))
        created.append(client)
        replies = wait_for(lambda: out.is_file() and out.read_text(), "the client's replies")
        answered = json.loads(replies)
        assert sorted(answered) == sorted(names)
        for name, (address, reply) in answered.items():
            assert address == cluster_ip, (name, address)
            backend, _, sent = reply.partition(":")
            assert sent == "hi", reply
            assert backend in created[:2], reply
        served = {reply.partition(":")[0] for _, reply in answered.values()}
        assert served == set(created[:2]), f"round robin over both ready pods: {answered}"
        # the names are the pod's, not the host's: nothing on this machine was changed
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo(f"{service_name}.{NAMESPACE}.svc", 7000)

        raw(api, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/{service_name}")
        wait_for(lambda: not accepts((cluster_ip, 7000)), "the listener closed with the Service")
    finally:
        for name in created:
            try:
                raw(api, "DELETE", f"{pods}/{name}", {"gracePeriodSeconds": 0})
            except Exception:
                pass
        try:
            raw(api, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/{service_name}")
        except Exception:
            pass
