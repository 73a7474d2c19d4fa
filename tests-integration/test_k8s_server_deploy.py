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

The manifests are installed into namespaces of this test's own (``gpd-<run>-system`` and
``gpd-<run>-kernels``), not gp-system and gp-kernels, which other suites of the session
cluster keep (the conformance suite's service accounts live in gp-system): :func:`relocated`
renames them in the rendered documents as data (every ``metadata.namespace``, the Namespaces,
the bindings' subjects, the server's ``GP_NAMESPACE`` and the namespace part of its
``GP_RESPONSE_IP`` Service name), and gives cluster-scoped objects this run's suffix.  The
test checks that uninstalling leaves nothing of its own and that every namespace, cluster
role and binding, and every RBAC object, ConfigMap, Service and Deployment of the other
namespaces that existed before it is still there (same uid).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
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
    ensure_namespace,
    install_kernelspec,
    k8s_cluster,
    kernel_objects,
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
SHIPPED_SERVER_NS, SHIPPED_KERNEL_NS = "gp-system", "gp-kernels"
"""The namespaces the manifests name (tests of the rendering check these)."""
RUN = secrets.token_hex(3)
SERVER_NS, KERNEL_NS = f"gpd-{RUN}-system", f"gpd-{RUN}-kernels"
"""This test's own namespaces (see the module docstring)."""
NAMESPACES = {SHIPPED_SERVER_NS: SERVER_NS, SHIPPED_KERNEL_NS: KERNEL_NS}
CLUSTER_SUFFIX = f"-gpd-{RUN}"
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
    assert ("Role", SHIPPED_KERNEL_NS, "gp-server-kernels") not in overlay
    container = server_container(overlay[("Deployment", SHIPPED_SERVER_NS, "gp-server")])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GP_CREATE_KERNEL_NAMESPACE"] == "true"


CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})
KERNEL_CLUSTER_ROLE = "kernel-controller"
"""The ClusterRole gp-k8s binds in each kernel's namespace (GP_KERNEL_CLUSTER_ROLE)."""


def server_container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def relocated(
    docs: list[dict[str, Any]], namespaces: Mapping[str, str], suffix: str
) -> list[dict[str, Any]]:
    """Copies of the rendered ``docs`` moved into other namespaces, as data (never by editing
    text): ``namespaces`` maps each shipped namespace to its replacement, and cluster-scoped
    objects other than Namespaces (ClusterRoles and their bindings, shared by the whole
    cluster) get ``suffix``, with every reference to them (``roleRef``, the ``bind`` rule's
    ``resourceNames``, the server's ``GP_KERNEL_CLUSTER_ROLE``) following."""
    moved = copy.deepcopy(docs)
    cluster_roles = {
        d["metadata"]["name"]: d["metadata"]["name"] + suffix
        for d in moved
        if d["kind"] == "ClusterRole"
    }
    for doc in moved:
        meta = doc["metadata"]
        if doc["kind"] == "Namespace":
            meta["name"] = namespaces.get(meta["name"], meta["name"])
        elif doc["kind"] in CLUSTER_SCOPED:
            meta["name"] += suffix
        elif "namespace" in meta:
            meta["namespace"] = namespaces.get(meta["namespace"], meta["namespace"])
        for subject in doc.get("subjects") or []:  # RoleBindings and ClusterRoleBindings
            if subject.get("kind") == "ServiceAccount" and "namespace" in subject:
                subject["namespace"] = namespaces.get(subject["namespace"], subject["namespace"])
        ref = doc.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole" and ref.get("name") in cluster_roles:
            ref["name"] = cluster_roles[ref["name"]]
        for rule in doc.get("rules") or []:
            if "clusterroles" in rule.get("resources", []) and "resourceNames" in rule:
                rule["resourceNames"] = [cluster_roles.get(n, n) for n in rule["resourceNames"]]
        if doc["kind"] == "Deployment":
            relocate_env(server_container(doc), namespaces, cluster_roles)
    return moved


def relocate_env(
    container: dict[str, Any], namespaces: Mapping[str, str], cluster_roles: Mapping[str, str]
) -> None:
    """The server's settings that name a namespace or a renamed ClusterRole: GP_NAMESPACE
    (its kernels' namespace), GP_RESPONSE_IP (``<service>.<namespace>.svc``: the namespace
    label of the DNS name is replaced) and GP_KERNEL_CLUSTER_ROLE (set when the manifests
    carry the ClusterRole it defaults to)."""
    env = container.setdefault("env", [])
    for entry in env:
        value = entry.get("value")
        if not isinstance(value, str):
            continue
        if entry["name"] == "GP_NAMESPACE":
            entry["value"] = namespaces.get(value, value)
        elif entry["name"] == "GP_RESPONSE_IP":
            labels = value.split(".")
            if len(labels) >= 3 and labels[2] == "svc" and labels[1] in namespaces:
                labels[1] = namespaces[labels[1]]
            entry["value"] = ".".join(labels)
        elif entry["name"] == "GP_KERNEL_CLUSTER_ROLE":
            entry["value"] = cluster_roles.get(value, value)
    names = {entry["name"] for entry in env}
    if KERNEL_CLUSTER_ROLE in cluster_roles and "GP_KERNEL_CLUSTER_ROLE" not in names:
        env.append({"name": "GP_KERNEL_CLUSTER_ROLE", "value": cluster_roles[KERNEL_CLUSTER_ROLE]})


def strings(data: Any) -> Iterator[str]:
    """Every string in ``data`` (keys and values)."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from strings(value)


@pytest.mark.parametrize("folder", [BASE, OVERLAY], ids=["base", "namespace-per-kernel"])
def test_relocated_manifests_name_only_the_new_namespaces(folder: Path) -> None:
    """Every reference to gp-system and gp-kernels moves (the namespaces, objects, binding
    subjects, the server's settings); cluster-scoped names get the suffix and references to
    them follow; nothing else changes."""
    rendered = kustomize(folder)
    docs = relocated(rendered, NAMESPACES, CLUSTER_SUFFIX)
    assert not [
        text for text in strings(docs) if SHIPPED_SERVER_NS in text or SHIPPED_KERNEL_NS in text
    ]
    namespaced = [d for d in docs if d["kind"] not in CLUSTER_SCOPED]
    assert {d["metadata"]["namespace"] for d in namespaced} <= {SERVER_NS, KERNEL_NS}
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    assert names == {SERVER_NS, KERNEL_NS}
    cluster_roles = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"}
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["name"].endswith(CLUSTER_SUFFIX)
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            assert doc["roleRef"]["name"] in cluster_roles
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert [s["namespace"] for s in doc["subjects"]] == [SERVER_NS]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in server_container(deployment)["env"]}
    assert env["GP_NAMESPACE"] == KERNEL_NS
    assert env["GP_RESPONSE_IP"] == f"gp-server-response.{SERVER_NS}.svc"
    if KERNEL_CLUSTER_ROLE + CLUSTER_SUFFIX in cluster_roles:
        assert env["GP_KERNEL_CLUSTER_ROLE"] == KERNEL_CLUSTER_ROLE + CLUSTER_SUFFIX
    else:
        assert "GP_KERNEL_CLUSTER_ROLE" not in env
    # The rest is the shipped manifests as they are: undo the renames, compare.
    back = relocated(docs, {v: k for k, v in NAMESPACES.items()}, "")
    for doc in back:
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"]["name"] = doc["metadata"]["name"].removesuffix(CLUSTER_SUFFIX)
        if doc.get("roleRef", {}).get("kind") == "ClusterRole":
            doc["roleRef"]["name"] = doc["roleRef"]["name"].removesuffix(CLUSTER_SUFFIX)
        for rule in doc.get("rules") or []:
            if "resourceNames" in rule:
                rule["resourceNames"] = [
                    n.removesuffix(CLUSTER_SUFFIX) for n in rule["resourceNames"]
                ]
        if doc["kind"] == "Deployment":
            container = server_container(doc)
            container["env"] = [
                e for e in container["env"] if e["name"] != "GP_KERNEL_CLUSTER_ROLE"
            ]
    assert back == rendered


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
    """What is left of the installation: its objects, and any pod in its namespaces."""
    found = []
    for doc in docs:
        try:
            raw(api, "GET", object_path(doc))
            found.append("/".join(identity(doc)))
        except ApiException as err:
            if err.status != 404:
                raise
    for namespace in (SERVER_NS, KERNEL_NS):
        pods = raw(api, "GET", f"/api/v1/namespaces/{namespace}/pods")
        found += [f"pod {namespace}/{p['metadata']['name']}" for p in pods["items"]]
    return found


OTHERS_CLUSTER = (PATHS["Namespace"], PATHS["ClusterRole"], PATHS["ClusterRoleBinding"])
OTHERS_NAMESPACED = {
    kind: PATHS[kind].replace("/namespaces/{ns}", "")
    for kind in ("ServiceAccount", "ConfigMap", "Service", "Deployment", "Role", "RoleBinding")
}


def others(api: Any) -> dict[str, str]:
    """``kind namespace/name`` -> uid of what this test must not touch: every namespace,
    ClusterRole and ClusterRoleBinding, and the objects of the kinds it installs in every
    namespace but its own.  Left out: what is being deleted already, kernels' objects and
    kernels' namespaces (other suites' reapers remove those in the background)."""
    kernel = "gateway-provisioners/kernel-id"
    found: dict[str, str] = {}
    gone: set[str] = set()
    for path in OTHERS_CLUSTER:
        for item in raw(api, "GET", path)["items"]:
            meta = item["metadata"]
            if meta.get("deletionTimestamp") or kernel in (meta.get("annotations") or {}):
                gone.add(meta["name"])
                continue
            found[f"{path} {meta['name']}"] = meta["uid"]
    for kind, path in OTHERS_NAMESPACED.items():
        for item in raw(api, "GET", path)["items"]:
            meta = item["metadata"]
            if meta["namespace"] in (SERVER_NS, KERNEL_NS, *gone) or meta.get("deletionTimestamp"):
                continue
            found[f"{kind} {meta['namespace']}/{meta['name']}"] = meta["uid"]
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


@pytest.mark.asyncio
async def test_install_run_a_kernel_through_the_server_and_uninstall(
    k8s_cluster: K8sCluster, home: Path
) -> None:
    api = k8s_cluster.api_client()
    docs = relocated(kustomize(BASE), NAMESPACES, CLUSTER_SUFFIX)
    before = others(api)
    http, response = free_port(), free_port()
    token = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gp-server-token", "namespace": SERVER_NS},
        "stringData": {"token": TOKEN},
    }
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    installed = [*namespaces, token, *(d for d in docs if d["kind"] != "Namespace")]
    kernel_id = ""
    try:
        for doc in installed:
            if doc["kind"] == "Deployment":
                readable_kubeconfig(k8s_cluster, home)
                # No --namespace: the kernels' namespace is the server's GP_NAMESPACE, as
                # relocated in the Deployment.
                with isolated_jupyter_paths(home) as prefix:
                    install_kernelspec(prefix, "python_k8s")
                open_up(home)
                doc = emulated(doc, home, http, response)
            create(api, doc)
        # v1.20 admits a namespace's pods once its default ServiceAccount has a token.
        ensure_namespace(api, KERNEL_NS)

        # least privilege: what the server's account may and may not do.  The authorizer sees
        # new RBAC objects through its informers, a moment after they are created, so the
        # first grant is waited for.
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
    assert kernel_objects(api, kernel_id) == []
    after = others(api)
    assert [key for key, uid in before.items() if after.get(key) != uid] == []
    with pytest.raises(ConnectionRefusedError):  # the server's process is gone too
        socket.create_connection(("127.0.0.1", http), timeout=2).close()
