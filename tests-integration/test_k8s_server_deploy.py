"""The server's Helm chart (deploy/helm/gp-server), rendered and installed with Helm v4's own
Go code (``helm-python-sdk``: the Helm SDK as a library, no helm binary) into the suite's real
kube-apiserver: both kernel-namespace modes render what the docs say, values are data (never
YAML text), the schema refuses bad values by name, RBAC is least privilege (SubjectAccessReviews),
the Deployment's pod starts (scheduled by the real scheduler, run by OUR NODE AGENT, NOT A
KUBELET), a client drives a kernel through it over REST and websocket, the kernel pod is created
with the server's own ServiceAccount (in its own namespace in per-kernel mode, which is created
and removed), and ``helm uninstall`` leaves nothing: no object, no pod, no release Secret.

What is emulated, plainly, and how: every difference goes in through VALUES the chart exposes
for operators anyway (no post-render patch: the chart expresses all of it):
- the node agent runs pods as local processes, not the server image (test_server_image.py
  checks that image in dockerd): ``image`` names one the node agent runs and
  ``server.command`` this checkout's Python (``python -m jupyter_server``; the chart appends
  the same listening arguments); that Python lives under /root, which uid 1000 cannot read, so
  ``podSecurityContext`` runs the pod as root here (``server.extraArgs: [--allow-root]``) and
  ``env`` names the kernels' user with GP_DEFAULT_KERNEL_USERNAME, the setting a root server
  needs;
- the node agent mounts no volumes: the ServiceAccount token becomes a kubeconfig file
  (``env.GP_KUBECONFIG``) and the kernelspecs a JUPYTER_PATH folder (``env.JUPYTER_PATH``),
  written from the installed ConfigMap's data by the Deployment's own ``items`` mapping;
- there is no cluster DNS and no kube-proxy: OUR SERVICE PROXY and the node agent stand in
  (backends/service_proxy.py): the apiserver gives the response Service a loopback ClusterIP,
  the proxy forwards ``ClusterIP:port`` to the pod the Service selects, and the node agent
  puts the Services' names into each pod's ``/etc/hosts``.  So the server advertises the
  chart's default, the Service's name ``gp-server-response.<namespace>.svc``, and the kernel
  pod reaches the response port THROUGH THE SERVICE (the test finds the proxy's record of the
  forwarded connection), and the test's client reaches the server through its HTTP Service's
  ClusterIP.  One difference: pods share the host's network here, so the server listens on
  its pod address (``server.listenAddress: 127.0.0.1``) instead of every address, which
  would take the Services' ports on their ClusterIPs too;
- ``ports`` are free ports of this host instead of 8888/8877 (host networking).

The chart installs into the release namespace, so the test needs no relocation: its release
lives in a namespace of its own (``gpd-<run>-<mode>``, created by the test as an operator
would, deleted at the end) and its kernels in ``gpd-<run>-<mode>-kernels``; cluster-scoped
objects carry the release namespace in their names.  The test checks that every namespace,
cluster role and binding, and every RBAC object, ConfigMap, Service and Deployment of the
other namespaces that existed before it is still there (same uid).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from backends.k8s_cluster import (
    KERNEL_IMAGE,
    K8sCluster,
    can,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
    raw,
    service_account_kubeconfig,
)
from jupyter_server_helpers import TOKEN, KernelSocket, Server
from kubernetes.client.exceptions import ApiException

from gp_provisioners_core import images
from gp_provisioners_core.testing import isolated_jupyter_paths

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "gp-server"
RUN = secrets.token_hex(3)
MODES = ("shared", "per-kernel")
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
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})


def mode_values(mode: str, kernel_namespace: str = "gp-kernels") -> dict[str, Any]:
    return {"kernelNamespace": {"mode": mode, "name": kernel_namespace}}


def render(
    values: Mapping[str, Any] | None = None, namespace: str = "gp-system", name: str = "gp-server"
) -> list[dict[str, Any]]:
    """``helm template`` through the SDK: the chart's documents (NOTES.txt left out)."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(dict(values or {}), name=name, namespace=namespace)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def identity(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = doc["metadata"]
    return (doc["kind"], meta.get("namespace", ""), meta["name"])


def object_path(doc: Mapping[str, Any]) -> str:
    kind, namespace, name = identity(doc)
    return PATHS[kind].format(ns=namespace) + f"/{name}"


def by_identity(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {identity(d): d for d in docs}


def server_container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def env_of(deployment: Mapping[str, Any]) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in server_container(deployment)["env"]
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- rendering ---------------------------------------------------------------------------------


def test_chart_versions_follow_the_images_policy() -> None:
    """appVersion is the release the server image carries (gp-provisioners-core's, like the
    kernel images), the default image is build_server.py's tag, and the default kernelspec
    names the project's Python kernel image."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == images.IMAGE_TAG
    [deployment] = [d for d in render() if d["kind"] == "Deployment"]
    container = server_container(deployment)
    assert container["image"] == f"{images.DEFAULT_PREFIX}/server:{images.IMAGE_TAG}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    [config] = [d for d in render() if d["kind"] == "ConfigMap"]
    spec = json.loads(config["data"]["python_k8s.json"])
    config_of_spec = spec["metadata"]["kernel_provisioner"]["config"]
    assert config_of_spec["image_name"] == images.default_image("python")


def test_shared_mode_renders_a_role_in_the_kernels_namespace_only() -> None:
    docs = by_identity(render(mode_values("shared")))
    assert set(docs) == {
        ("Namespace", "", "gp-kernels"),
        ("ServiceAccount", "gp-system", "gp-server"),
        ("Role", "gp-kernels", "gp-server-kernels"),
        ("RoleBinding", "gp-kernels", "gp-server-kernels"),
        ("ConfigMap", "gp-system", "gp-server-kernelspecs"),
        ("Secret", "gp-system", "gp-server-token"),
        ("Service", "gp-system", "gp-server"),
        ("Service", "gp-system", "gp-server-response"),
        ("Deployment", "gp-system", "gp-server"),
    }
    binding = docs[("RoleBinding", "gp-kernels", "gp-server-kernels")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gp-server", "namespace": "gp-system"}
    ]
    env = env_of(docs[("Deployment", "gp-system", "gp-server")])
    assert env["GP_NAMESPACE"] == "gp-kernels"
    assert env["GP_RESPONSE_IP"] == "gp-server-response.gp-system.svc"
    assert "GP_CREATE_KERNEL_NAMESPACE" not in env
    assert env["JUPYTER_TOKEN"] == {"secretKeyRef": {"name": "gp-server-token", "key": "token"}}
    token = docs[("Secret", "gp-system", "gp-server-token")]["data"]["token"]
    assert len(base64.b64decode(token)) == 48
    # without creating the namespace, it is not part of the release
    kept = by_identity(render({"kernelNamespace": {"name": "theirs", "create": False}}))
    assert not [k for k in kept if k[0] == "Namespace"]
    assert ("Role", "theirs", "gp-server-kernels") in kept


def test_per_kernel_mode_renders_the_cluster_roles() -> None:
    docs = by_identity(render(mode_values("per-kernel"), namespace="ops", name="lab"))
    cluster = {k for k in docs if k[0] in CLUSTER_SCOPED}
    assert cluster == {
        ("ClusterRole", "", "ops-lab-gp-server"),
        ("ClusterRoleBinding", "", "ops-lab-gp-server"),
        ("ClusterRole", "", "ops-lab-gp-server-kernel"),
    }
    assert not [k for k in docs if k[0] in ("Role", "RoleBinding", "Namespace")]
    assert {k[1] for k in docs if k not in cluster} == {"ops"}
    server_role = docs[("ClusterRole", "", "ops-lab-gp-server")]
    [bind] = [r for r in server_role["rules"] if "clusterroles" in r["resources"]]
    assert bind["verbs"] == ["bind"]
    assert bind["resourceNames"] == ["ops-lab-gp-server-kernel"]
    binding = docs[("ClusterRoleBinding", "", "ops-lab-gp-server")]
    assert binding["roleRef"]["name"] == "ops-lab-gp-server"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "lab-gp-server", "namespace": "ops"}
    ]
    env = env_of(docs[("Deployment", "ops", "lab-gp-server")])
    assert env["GP_CREATE_KERNEL_NAMESPACE"] == "true"
    assert env["GP_KERNEL_CLUSTER_ROLE"] == "ops-lab-gp-server-kernel"
    assert env["GP_RESPONSE_IP"] == "lab-gp-server-response.ops.svc"
    assert "GP_NAMESPACE" not in env


@pytest.mark.parametrize("mode", MODES)
def test_deployment_services_and_kernelspecs_fit_together(mode: str) -> None:
    """The Services select the pod and target its named ports; every kernelspec of the
    ConfigMap is mounted as <name>/kernel.json; the pod is non-root."""
    specs = [
        {"name": "one", "spec": {"argv": ["python3"], "display_name": "One"}},
        {"name": "two.x", "spec": {"argv": ["python3"], "display_name": "Two"}},
    ]
    docs = render({**mode_values(mode), "kernelspecs": specs})
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000
    container = server_container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8888, "response": 8877}
    env = env_of(deployment)
    assert env["GP_RESPONSE_PORT"] == "8877"
    assert env["GP_RESPONSE_BIND_IP"] == "0.0.0.0"
    assert "--ServerApp.ip=0.0.0.0" in container["command"]
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items())
        assert selector == deployment["spec"]["selector"]["matchLabels"]
        [port] = service["spec"]["ports"]
        assert port["port"] == ports[port["targetPort"]]
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert {k: json.loads(v) for k, v in config["data"].items()} == {
        f"{s['name']}.json": s["spec"] for s in specs
    }
    [volume] = pod["spec"]["volumes"]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    assert volume["configMap"]["items"] == [
        {"key": "one.json", "path": "one/kernel.json"},
        {"key": "two.x.json", "path": "two.x/kernel.json"},
    ]
    [mount] = container["volumeMounts"]
    assert mount["mountPath"] == "/usr/local/share/jupyter/kernels"


HOSTILE = 'x"\n- name: INJECTED\n  value: "1'


def test_values_are_data_never_yaml_text() -> None:
    """Values with YAML syntax in them land as the same strings, and add nothing."""
    values = {
        "env": {"GP_ALLOWED_LABEL_KEYS": HOSTILE},
        "podAnnotations": {"note": HOSTILE},
        "podLabels": {"team": "a: b"},
        "server": {"extraArgs": [HOSTILE], "responseAddress": "gp.example.org"},
        "kernelspecs": [{"name": "k", "spec": {"argv": [HOSTILE], "display_name": HOSTILE}}],
        "nodeSelector": {"disk": "ssd: {x}"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {"limits": {"cpu": "2"}},
        "priorityClassName": "high",
        "imagePullSecrets": [{"name": "registry"}],
    }
    [deployment] = [d for d in render(values) if d["kind"] == "Deployment"]
    env = env_of(deployment)
    assert env["GP_ALLOWED_LABEL_KEYS"] == HOSTILE
    assert "INJECTED" not in env
    assert env["GP_RESPONSE_IP"] == "gp.example.org"
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"]["note"] == HOSTILE
    assert pod["metadata"]["labels"]["team"] == "a: b"
    assert server_container(deployment)["command"][-1] == HOSTILE
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd: {x}"}
    assert pod["spec"]["tolerations"] == values["tolerations"]
    # Helm merges maps with the defaults: the cpu limit joins the default memory limit
    assert server_container(deployment)["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert pod["spec"]["priorityClassName"] == "high"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    [config] = [d for d in render(values) if d["kind"] == "ConfigMap"]
    assert json.loads(config["data"]["k.json"])["display_name"] == HOSTILE


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kernelNamespace": {"mode": "both"}}, "/kernelNamespace/mode"),
        ({"kernelNamespace": {"name": "Kernels_NS"}}, "/kernelNamespace/name"),
        ({"ports": {"http": 70000}}, "/ports/http"),
        ({"ports": {"response": "8877"}}, "/ports/response"),
        ({"ports": {"http": 8877}}, "ports.http and ports.response"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"fullnameOverride": "Gp Server"}, "/fullnameOverride"),
        ({"replicas": 2}, "replicas"),
        ({"kernelspecs": [{"name": "a b", "spec": {"argv": ["x"], "display_name": "x"}}]},
         "/kernelspecs/0/name"),
        ({"kernelspecs": [{"name": "k", "spec": {"argv": []}}]}, "/kernelspecs/0/spec"),
        ({"env": {"JUPYTER_TOKEN": "t"}}, "env.JUPYTER_TOKEN"),
        ({"env": {"BAD-NAME": "x"}}, "invalid propertyName 'BAD-NAME'"),
        ({"kernelNamespace": {"name": "gp-system"}}, "kernelNamespace.name"),
        ({"server": {"listenAddress": "0.0.0.0 --allow-root"}}, "/server/listenAddress"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_naming_the_value(values: dict[str, Any], named: str) -> None:
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    assert named in str(refused.value)


LINT_INFO = 1
"""Severity of Helm lint's advice (an icon is recommended); 2 is a warning, 3 an error."""


@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_finds_nothing_to_fix(mode: str) -> None:
    report = helm.lint(CHART, mode_values(mode), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] > LINT_INFO] == []


# -- installed into the real apiserver ---------------------------------------------------------


def readable_kubeconfig(cluster: K8sCluster, namespace: str, account: str, home: Path) -> Path:
    """The server account's token as a kubeconfig the pod can read (CA inlined)."""
    source = service_account_kubeconfig(cluster, namespace, account)
    config = yaml.safe_load(source.read_text())
    for entry in config["clusters"]:
        ca = Path(entry["cluster"].pop("certificate-authority"))
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    target = home / "token.kubeconfig"
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o644)
    return target


def mounted_kernelspecs(api: Any, deployment: Mapping[str, Any], jupyter_path: Path) -> None:
    """What the ConfigMap volume would show the server, written as files: each item of the
    Deployment's volume, read from the installed ConfigMap, under ``jupyter_path``."""
    pod = deployment["spec"]["template"]["spec"]
    [volume] = pod["volumes"]
    [mount] = server_container(deployment)["volumeMounts"]
    assert mount["mountPath"] == "/usr/local/share/jupyter/kernels"
    namespace = deployment["metadata"]["namespace"]
    config = raw(
        api, "GET", f"/api/v1/namespaces/{namespace}/configmaps/{volume['configMap']['name']}"
    )
    for item in volume["configMap"]["items"]:
        target = jupyter_path / "kernels" / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(config["data"][item["key"]])


async def granted(api: Any, user: str, verb: str, resource: str, namespace: str) -> None:
    """Wait (at most 30 s) until the authorizer grants ``user`` ``verb`` on ``resource``."""
    deadline = time.monotonic() + 30
    while not can(api, user, verb, resource, namespace):
        assert time.monotonic() < deadline, f"{user} never got {verb} {resource} in {namespace}"
        await asyncio.sleep(0.2)


def left_over(api: Any, docs: list[dict[str, Any]], namespaces: tuple[str, ...]) -> list[str]:
    """What is left of the release: its objects, Helm's release Secrets and any pod in its
    namespaces."""
    found = []
    for doc in docs:
        try:
            raw(api, "GET", object_path(doc))
            found.append("/".join(identity(doc)))
        except ApiException as err:
            if err.status != 404:
                raise
    for namespace in namespaces:
        try:
            pods = raw(api, "GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
            releases = raw(
                api, "GET", f"/api/v1/namespaces/{namespace}/secrets", labelSelector="owner=helm"
            )["items"]
        except ApiException as err:
            if err.status != 404:
                raise
            continue
        found += [f"pod {namespace}/{p['metadata']['name']}" for p in pods]
        found += [f"release {namespace}/{s['metadata']['name']}" for s in releases]
    return found


OTHERS_CLUSTER = (PATHS["Namespace"], PATHS["ClusterRole"], PATHS["ClusterRoleBinding"])
OTHERS_NAMESPACED = {
    kind: PATHS[kind].replace("/namespaces/{ns}", "")
    for kind in ("ServiceAccount", "ConfigMap", "Service", "Deployment", "Role", "RoleBinding")
}


def others(api: Any, own: tuple[str, ...]) -> dict[str, str]:
    """``kind namespace/name`` -> uid of what this test must not touch: every namespace,
    ClusterRole and ClusterRoleBinding, and the objects of the kinds it installs in every
    namespace but its ``own``.  Left out: what is being deleted already, kernels' objects and
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
            if meta["namespace"] in (*own, *gone) or meta.get("deletionTimestamp"):
                continue
            found[f"{kind} {meta['namespace']}/{meta['name']}"] = meta["uid"]
    return found


@pytest.fixture
def home() -> Iterator[Path]:
    """The server's home, readable by any uid (pytest's own temporary folders are not)."""
    folder = Path(tempfile.mkdtemp(prefix="gp-server-home-"))
    (folder / "runtime").mkdir()
    open_up(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def open_up(folder: Path) -> None:
    for path in (folder, *folder.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o644)


def emulation_values(
    mode: str, kernel_ns: str, home: Path, http: int, response: int
) -> dict[str, Any]:
    """The values that run the chart on this machine (see the module docstring); the
    kernelspec is the one ``jupyter k8s-spec install`` writes for the node agent."""
    with isolated_jupyter_paths(home) as prefix:
        install_kernelspec(prefix, "python_k8s")
    spec_file = home / "share" / "jupyter" / "kernels" / "python_k8s" / "kernel.json"
    repository, tag = KERNEL_IMAGE.rsplit(":", 1)
    return {
        **mode_values(mode, kernel_ns),
        "image": {"repository": repository, "tag": tag},
        "auth": {"existingSecret": "server-token"},
        "server": {
            "command": [sys.executable, "-m", "jupyter_server"],
            "extraArgs": ["--allow-root"],
            "listenAddress": "127.0.0.1",  # the pod's address (host networking)
            "rootDir": str(home),
        },
        "ports": {"http": http, "response": response},
        "podSecurityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False},
        "env": {
            "GP_DEFAULT_KERNEL_USERNAME": "jovyan",
            "GP_KUBECONFIG": str(home / "token.kubeconfig"),
            "JUPYTER_PATH": str(home / "share" / "jupyter"),
            "HOME": str(home),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        },
        "kernelspecs": [{"name": "python_k8s", "spec": json.loads(spec_file.read_text())}],
    }


async def wait_for_server(server: Server, cluster: K8sCluster) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            code, _ = await server.call("GET", "/api/kernelspecs")
        except OSError:
            code = 0
        if code == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert code == 200, cluster.logs()


async def least_privilege(api: Any, mode: str, sa: str, namespace: str, kernel_ns: str) -> None:
    """What the server's account may and may not do.  The authorizer sees new RBAC objects
    through its informers, a moment after they are created, so the first grant is waited for."""
    if mode == "shared":
        await granted(api, sa, "create", "pods", kernel_ns)
        assert can(api, sa, "watch", "pods", kernel_ns)
        assert can(api, sa, "create", "secrets", kernel_ns)
        assert not can(api, sa, "create", "pods", "default")
        assert not can(api, sa, "create", "namespaces", "")
        assert not can(api, sa, "create", "pods", namespace)
    else:
        # pods and namespaces cluster-wide: what a namespace per kernel needs
        await granted(api, sa, "create", "namespaces", "")
        assert can(api, sa, "watch", "pods", "")
        assert can(api, sa, "create", "rolebindings", "a-kernel", group="rbac.authorization.k8s.io")
        role = f"{namespace}-gp-server-kernel"
        assert can(
            api, sa, "bind", "clusterroles", "", name=role, group="rbac.authorization.k8s.io"
        )
        assert not can(
            api,
            sa,
            "bind",
            "clusterroles",
            "",
            name="cluster-admin",
            group="rbac.authorization.k8s.io",
        )
        assert not can(api, sa, "create", "clusterroles", "", group="rbac.authorization.k8s.io")
    assert not can(api, sa, "get", "secrets", kernel_ns)
    assert not can(api, sa, "list", "nodes")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_helm_install_run_a_kernel_through_the_server_and_uninstall(
    k8s_cluster: K8sCluster, home: Path, mode: str
) -> None:
    api = k8s_cluster.api_client()
    namespace = f"gpd-{RUN}-{'pk' if mode == 'per-kernel' else 'sh'}"
    kernel_ns = f"{namespace}-kernels"
    own = (namespace, kernel_ns)
    before = others(api, own)
    http, response = free_port(), free_port()
    values = emulation_values(mode, kernel_ns, home, http, response)
    sa = f"system:serviceaccount:{namespace}:gp-server"
    # The release namespace and the token Secret exist before the release, as the docs say.
    ensure_namespace(api, namespace)
    token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "server-token"}}
    raw(
        api,
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {**token, "stringData": {"token": TOKEN}},
    )
    config = helm.Config(kubeconfig_path=k8s_cluster.admin_kubeconfig, namespace=namespace)
    docs: list[dict[str, Any]] = []
    kernel_id = ""
    try:
        # Helm's calls block: off the event loop.
        release = await asyncio.to_thread(config.install, CHART, "gp-server", values, timeout=120)
        assert release["status"] == "deployed"
        docs = [d for d in yaml.safe_load_all(release["manifest"]) if d]
        assert by_identity(docs).keys() == by_identity(render(values, namespace)).keys()
        [deployment] = [d for d in docs if d["kind"] == "Deployment"]
        readable_kubeconfig(k8s_cluster, namespace, "gp-server", home)
        mounted_kernelspecs(api, deployment, home / "share" / "jupyter")
        open_up(home)
        if mode == "shared":
            # v1.20 admits a namespace's pods once its default ServiceAccount has a token.
            ensure_namespace(api, kernel_ns)
        await least_privilege(api, mode, sa, namespace, kernel_ns)

        # the client talks to the server through its HTTP Service (the proxy's ClusterIP)
        http_service = raw(api, "GET", f"/api/v1/namespaces/{namespace}/services/gp-server")
        address = f"http://{http_service['spec']['clusterIP']}:{http}"
        server = Server(address, home / "unused.log", None)  # type: ignore[arg-type]
        await wait_for_server(server, k8s_cluster)
        [pod] = raw(
            api, "GET", f"/api/v1/namespaces/{namespace}/pods",
            labelSelector="app.kubernetes.io/name=gp-server",
        )["items"]  # fmt: skip
        assert pod["spec"]["serviceAccountName"] == "gp-server"
        # The response Service routes to this pod's response port: its selector matches the
        # pod and its targetPort names the port the server listens on (the service proxy
        # reads the same two; Endpoints stay empty: the API refuses loopback addresses).
        service = raw(api, "GET", f"/api/v1/namespaces/{namespace}/services/gp-server-response")
        labels = pod["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
        [port] = service["spec"]["ports"]
        ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
        assert ports[port["targetPort"]] == port["port"] == response

        code, model = await server.call("POST", "/api/kernels", {"name": "python_k8s"})
        assert code == 201, model
        kernel_id = model["id"]
        selector = f"kernel-id={kernel_id}"
        [kernel_pod] = raw(api, "GET", "/api/v1/pods", labelSelector=selector)["items"]
        kernel_pod_ns = kernel_pod["metadata"]["namespace"]
        if mode == "shared":
            assert kernel_pod_ns == kernel_ns
        else:
            assert kernel_pod_ns not in own
            assert f"namespace {kernel_pod_ns}" in kernel_objects(api, kernel_id)
        # The kernel answered to the Service's name: the proxy forwarded its connection from
        # the Service's ClusterIP to the server pod's response port.
        forwarded = f"service {namespace}/gp-server-response port {response}: connection forwarded"
        assert forwarded in k8s_cluster.component_log("service-proxy"), "not through the Service"
        channel = await KernelSocket.open(server, kernel_id)
        try:
            assert (await channel.execute("print(6 * 7)"))["stdout"].strip() == "42"
        finally:
            channel.close()
        assert (await server.call("DELETE", f"/api/kernels/{kernel_id}"))[0] == 204
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and kernel_objects(api, kernel_id):
            await asyncio.sleep(0.5)
        assert kernel_objects(api, kernel_id) == []  # the per-kernel namespace too
    finally:
        try:
            await asyncio.to_thread(
                config.uninstall, "gp-server", wait="watcher", timeout=120, ignore_not_found=True
            )
        finally:
            config.close()
    deadline = time.monotonic() + 120
    left = left_over(api, docs, own)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(1)
        left = left_over(api, docs, own)
    assert left == []
    assert kernel_objects(api, kernel_id) == []
    # What the test made itself: the release namespace, with the token Secret.
    raw(api, "DELETE", f"/api/v1/namespaces/{namespace}")
    after = others(api, own)
    assert [key for key, uid in before.items() if after.get(key) != uid] == []
    with pytest.raises(ConnectionRefusedError):  # the server's process is gone too
        socket.create_connection(("127.0.0.1", http), timeout=2).close()


def test_the_generated_token_is_kept_across_upgrades(k8s_cluster: K8sCluster) -> None:
    """Without auth.existingSecret the chart generates the token at install and, rendered
    against the live cluster for an upgrade (Helm's ``lookup``), keeps the one installed."""
    api = k8s_cluster.api_client()
    namespace = f"gpd-{RUN}-token"
    ensure_namespace(api, namespace)
    installed = base64.b64encode(b"the-installed-token").decode()
    try:
        with helm.Config(kubeconfig_path=k8s_cluster.admin_kubeconfig, namespace=namespace) as cfg:
            with helm.Chart.load(CHART) as chart:

                def token() -> str:
                    rendered = cfg.render(
                        chart, {}, name="gp-server", namespace=namespace, is_upgrade=True
                    )
                    [secret] = yaml.safe_load_all(rendered["gp-server/templates/secret-token.yaml"])
                    return str(secret["data"]["token"])

                fresh = token()
                assert fresh != installed
                assert len(base64.b64decode(fresh)) == 48
                secret = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "gp-server-token"},
                    "data": {"token": installed},
                }
                raw(api, "POST", f"/api/v1/namespaces/{namespace}/secrets", secret)
                assert token() == installed
    finally:
        raw(api, "DELETE", f"/api/v1/namespaces/{namespace}")
