"""The server's deployment manifests (deploy/kustomize) installed into the suite's real
kube-apiserver: RBAC is least privilege, the Deployment's pod starts (scheduled by the real
scheduler, run by OUR NODE AGENT, NOT A KUBELET), a client drives a kernel through it over REST
and websocket, the kernel pod is created with the server's own ServiceAccount, and uninstalling
leaves nothing.

What is emulated, plainly:
- the node agent runs pods as local processes, not the server image (test_server_image.py
  checks that image in dockerd): the test replaces the container's image with one the node
  agent runs and its command with this checkout's Python (``python -m jupyter_server``, the
  same arguments); that Python lives under /root, which uid 1000 cannot read, so the pod runs
  as root here (``--allow-root``, the manifest's ``runAsUser: 1000`` dropped) and names the
  kernels' user with GP_DEFAULT_KERNEL_USERNAME, the setting a root server needs;
- the node agent mounts no volumes: the ServiceAccount token becomes a kubeconfig file
  (GP_KUBECONFIG) and the kernelspec a JUPYTER_PATH folder, instead of the projected token and
  the ConfigMap mount;
- there is no cluster DNS and no kube-proxy: the response Service's name does not resolve on
  this host, so the server advertises 127.0.0.1 (its pod's address: host networking) instead of
  ``gp-server-response.gp-system.svc``, and the kernel pod reaches the response port directly,
  NOT through the Service.  The test checks that the Service selects the server pod and targets
  the port it listens on (Endpoints stay empty: the API refuses loopback addresses in them);
- ports are free ports of this host instead of 8888/8877 (host networking).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).parent))

from backends.k8s_cluster import (
    KERNEL_IMAGE,
    ClusterUnavailable,
    K8sCluster,
    can,
    ensure_binaries,
    install_kernelspec,
    k8s_cluster,
    raw,
    service_account_kubeconfig,
)
from backends.system_packages import cannot_run
from jupyter_server_helpers import TOKEN, KernelSocket, Server

from gp_provisioners_core.testing import isolated_jupyter_paths

__all__ = ["k8s_cluster"]

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "deploy" / "kustomize" / "base"
OVERLAY = ROOT / "deploy" / "kustomize" / "overlays" / "namespace-per-kernel"
SERVER_NS, KERNEL_NS = "gp-system", "gp-kernels"
SA = f"system:serviceaccount:{SERVER_NS}:gp-server"
PATHS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def base_documents(folder: Path = BASE) -> list[dict[str, Any]]:
    """The resources of a kustomization without transformers (``base`` and ``common``): its
    bases' and its own files, which is what ``kubectl kustomize`` renders."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for base in kustomization.get("bases", []):
        docs += base_documents((folder / base).resolve())
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((folder / name).read_text()) if d]
    return docs


def identity(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc["metadata"]
    return (doc["kind"], meta.get("namespace", ""), meta["name"])


def object_path(doc: dict[str, Any]) -> str:
    kind, namespace, name = identity(doc)
    return PATHS[kind].format(ns=namespace) + f"/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """``folder`` rendered by the kustomize built into the suite's kubectl (v1.20, kustomize
    v2.0.3, the oldest the manifests are written for; built with the control plane)."""
    try:
        kubectl = ensure_binaries() / "kubectl"
    except ClusterUnavailable as err:
        cannot_run(f"kubectl: {err}")
    out = subprocess.run(
        [str(kubectl), "kustomize", str(folder)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_kustomize_renders_the_base_and_the_namespace_per_kernel_overlay() -> None:
    assert sorted(map(identity, kustomize(BASE))) == sorted(map(identity, base_documents()))
    overlay = {identity(d): d for d in kustomize(OVERLAY)}
    assert ("ClusterRole", "", "gp-server") in overlay
    assert ("Role", KERNEL_NS, "gp-server-kernels") not in overlay
    container = overlay[("Deployment", SERVER_NS, "gp-server")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GP_CREATE_KERNEL_NAMESPACE"] == "true"


def emulated(deployment: dict[str, Any], home: Path, http: int, response: int) -> dict[str, Any]:
    """The Deployment as this machine can run it (see the module docstring), as data."""
    changed = copy.deepcopy(deployment)
    container = changed["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["jupyter", "server"]
    args = [
        a
        for a in container["command"][2:]
        if not a.startswith(("--ServerApp.port", "--ServerApp.root_dir"))
    ]
    container["image"] = KERNEL_IMAGE
    container["command"] = [
        sys.executable, "-m", "jupyter_server", *args, "--allow-root",
        f"--ServerApp.port={http}", f"--ServerApp.root_dir={home}",
    ]  # fmt: skip
    pod_spec = changed["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsUser"] == 1000
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    pod_spec.pop("securityContext")
    container["workingDir"] = str(home)
    env = [e for e in container["env"] if e["name"] not in ("GP_RESPONSE_PORT", "GP_RESPONSE_IP")]
    env += [
        {"name": "GP_RESPONSE_PORT", "value": str(response)},
        {"name": "GP_RESPONSE_IP", "value": "127.0.0.1"},
        {"name": "GP_DEFAULT_KERNEL_USERNAME", "value": "jovyan"},
        {"name": "GP_KUBECONFIG", "value": str(home / "token.kubeconfig")},
        {"name": "JUPYTER_PATH", "value": str(home / "share" / "jupyter")},
        {"name": "HOME", "value": str(home)},
        {"name": "JUPYTER_RUNTIME_DIR", "value": str(home / "runtime")},
    ]
    container["env"] = env
    for port in container["ports"]:
        port["containerPort"] = http if port["name"] == "http" else response
    return changed


async def granted(api: Any, user: str, verb: str, resource: str, namespace: str) -> None:
    """Wait (at most 30 s) until the authorizer grants ``user`` ``verb`` on ``resource``."""
    deadline = time.monotonic() + 30
    while not can(api, user, verb, resource, namespace):
        assert time.monotonic() < deadline, f"{user} never got {verb} {resource} in {namespace}"
        await asyncio.sleep(0.2)


def readable_kubeconfig(cluster: K8sCluster, home: Path) -> None:
    """The server account's token as a kubeconfig uid 1000 can read (CA inlined)."""
    source = service_account_kubeconfig(cluster, SERVER_NS, "gp-server")
    config = yaml.safe_load(source.read_text())
    for entry in config["clusters"]:
        ca = Path(entry["cluster"].pop("certificate-authority"))
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    target = home / "token.kubeconfig"
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o644)


def create(api: Any, doc: dict[str, Any]) -> None:
    kind, namespace, _ = identity(doc)
    raw(api, "POST", PATHS[kind].format(ns=namespace), doc)


def uninstall(api: Any, docs: list[dict[str, Any]]) -> None:
    for doc in reversed(docs):
        try:
            raw(api, "DELETE", object_path(doc), {"propagationPolicy": "Foreground"})
        except ApiException as err:
            if err.status != 404:
                raise


def left_over(api: Any, docs: list[dict[str, Any]]) -> list[str]:
    found = []
    for doc in docs:
        try:
            raw(api, "GET", object_path(doc))
            found.append("/".join(identity(doc)))
        except ApiException as err:
            if err.status != 404:
                raise
    pods = raw(api, "GET", "/api/v1/pods", labelSelector="app.kubernetes.io/name=gp-server")
    found += [f"pod {p['metadata']['name']}" for p in pods["items"]]
    return found


@pytest.fixture
def home() -> Iterator[Path]:
    """The server's home, readable by its uid 1000 (pytest's own temporary folders are not)."""
    folder = Path(tempfile.mkdtemp(prefix="gp-server-home-"))
    (folder / "runtime").mkdir()
    open_up(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def open_up(folder: Path) -> None:
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o644)


@pytest.mark.skipif(
    os.environ.get("GP_TEST_SERVER_DEPLOY") != "1",
    reason="opt-in (GP_TEST_SERVER_DEPLOY=1): it installs into gp-system and gp-kernels, the "
    "namespaces the Kubernetes conformance suite keeps for the session, and its uninstall "
    "deletes them; run it alone until the test renames its namespaces",
)
@pytest.mark.asyncio
async def test_install_run_a_kernel_through_the_server_and_uninstall(
    k8s_cluster: K8sCluster, home: Path
) -> None:
    api = k8s_cluster.api_client()
    docs = base_documents()
    http, response = free_port(), free_port()
    token = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gp-server-token", "namespace": SERVER_NS},
        "stringData": {"token": TOKEN},
    }
    installed = [*docs[:2], token, *docs[2:]]  # the namespaces, the token, the rest
    try:
        for doc in installed:
            if doc["kind"] == "Deployment":
                readable_kubeconfig(k8s_cluster, home)
                with isolated_jupyter_paths(home) as prefix:
                    install_kernelspec(prefix, "python_k8s", "--namespace", KERNEL_NS)
                open_up(home)
                doc = emulated(doc, home, http, response)
            create(api, doc)

        # least privilege: what the server's account may and may not do.  The authorizer sees
        # new RBAC objects through its informers, a moment after they are created (the
        # manifests list the Role last), so the first grant is waited for.
        await granted(api, SA, "create", "pods", KERNEL_NS)
        assert can(api, SA, "watch", "pods", KERNEL_NS)
        assert can(api, SA, "create", "secrets", KERNEL_NS)
        assert not can(api, SA, "get", "secrets", KERNEL_NS)
        assert not can(api, SA, "create", "pods", SERVER_NS)
        assert not can(api, SA, "create", "pods", "default")
        assert not can(api, SA, "list", "nodes")

        server = Server(f"http://127.0.0.1:{http}", home / "unused.log", None)  # type: ignore[arg-type]
        deadline = time.monotonic() + 120
        while True:
            try:
                code, _ = await server.call("GET", "/api/kernelspecs")
            except OSError:
                code = 0
            if code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert code == 200, k8s_cluster.logs()
        [pod] = raw(
            api, "GET", f"/api/v1/namespaces/{SERVER_NS}/pods",
            labelSelector="app.kubernetes.io/name=gp-server",
        )["items"]  # fmt: skip
        assert pod["spec"]["serviceAccountName"] == "gp-server"

        # The response Service routes to this pod's response port: its selector matches the
        # pod and its targetPort names the port the server listens on.  (Its Endpoints stay
        # empty here: the API refuses loopback endpoint addresses, and pods here have
        # 127.0.0.1.)
        service = raw(api, "GET", f"/api/v1/namespaces/{SERVER_NS}/services/gp-server-response")
        labels = pod["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
        [port] = service["spec"]["ports"]
        [server_container] = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in server_container["ports"]}
        assert ports[port["targetPort"]] == response

        code, model = await server.call("POST", "/api/kernels", {"name": "python_k8s"})
        assert code == 201, model
        kernel_id = model["id"]
        kernel_pods = raw(
            api,
            "GET",
            f"/api/v1/namespaces/{KERNEL_NS}/pods",
            labelSelector=f"kernel-id={kernel_id}",
        )["items"]
        assert len(kernel_pods) == 1
        channel = await KernelSocket.open(server, kernel_id)
        try:
            assert (await channel.execute("print(6 * 7)"))["stdout"].strip() == "42"
        finally:
            channel.close()
        assert (await server.call("DELETE", f"/api/kernels/{kernel_id}"))[0] == 204
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and raw(
                api,
                "GET",
                f"/api/v1/namespaces/{KERNEL_NS}/pods",
                labelSelector=f"kernel-id={kernel_id}",
            )["items"]
        ):
            await asyncio.sleep(0.5)
    finally:
        uninstall(api, installed)
    deadline = time.monotonic() + 120
    left = left_over(api, installed)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(1)
        left = left_over(api, installed)
    assert left == []
    with pytest.raises(ConnectionRefusedError):  # the server's process is gone too
        socket.create_connection(("127.0.0.1", http), timeout=2).close()
