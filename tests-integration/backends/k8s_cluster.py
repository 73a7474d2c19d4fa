"""A real Kubernetes control plane on loopback for the gp-k8s suites.

etcd (Debian's ``etcd-server``), kube-apiserver, kube-controller-manager and kube-scheduler
(v1.20.2, built from Debian's ``kubernetes`` source package by ``k8s_build.sh`` and cached under
``${GP_CACHE_DIR:-~/.cache/gateway-provisioners}/k8s/bin``), with certificates made here by the
``cryptography`` library.  Every server listens on 127.0.0.1 only.

There is NO kubelet: pods run through our node agent (``node_agent.py``), which registers a
Ready node, runs each pod's container command as a local process and reports status and events
through the real API.  See shared/notes/kubernetes.md for why a stock kubelet must not run here.

``shared_cluster()`` starts one cluster per test process (torn down at exit); the pytest
fixture ``k8s_cluster`` (``backends/k8s_fixtures.py``) wraps it.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

if not __package__:  # run as a script (nox -s bench): make the ``backends`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backends.service_proxy import service_cidr
from backends.system_packages import MissingSystemPackages, require

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("GP_CACHE_DIR") or Path.home() / ".cache" / "gateway-provisioners")
K8S_BIN = CACHE / "k8s" / "bin"
BUILD_SCRIPT = HERE / "k8s_build.sh"
NODE_NAME = "gp-node-agent"
KERNEL_IMAGE = "gp-test/kernel-py:latest"  # "present" on the node agent; no image is pulled
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


class ClusterUnavailable(RuntimeError):
    """The control plane cannot run here (binaries missing and not buildable, no etcd)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- certificates -------------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str = "") -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


@dataclass
class Pki:
    """CA, serving and client certificates, and the service-account key pair."""

    root: Path
    service_cidr: str
    """The cluster's Service range: the serving certificate names its first address (the
    ``kubernetes`` Service's ClusterIP)."""

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        self._not_before = now - datetime.timedelta(hours=1)
        self._not_after = now + datetime.timedelta(days=2)
        self.ca_key = _key()
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("gp-test-ca"))
            .issuer_name(_name("gp-test-ca"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = self.root / "ca.crt"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        sa_key = _key()
        self.sa_key_file = self.root / "sa.key"
        _write_key(self.sa_key_file, sa_key)
        self.sa_pub_file = self.root / "sa.pub"
        self.sa_pub_file.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def issue(
        self, name: str, cn: str, org: str = "", *, server: bool = False
    ) -> tuple[Path, Path]:
        key = _key()
        usage = x509.oid.ExtendedKeyUsageOID
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([usage.SERVER_AUTH if server else usage.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            first_service_ip = ipaddress.IPv4Address(self.service_cidr.split("/")[0]) + 1
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.DNSName("kubernetes.default.svc.cluster.local"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(first_service_ip),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        cert_file, key_file = self.root / f"{name}.crt", self.root / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_file, key)
        return cert_file, key_file


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> Path:
    """A kubeconfig for ``user`` as data (yaml.safe_dump), never as templated text."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "gp-test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [{"name": "gp-test", "context": {"cluster": "gp-test", "user": user}}],
        "current-context": "gp-test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# -- processes ----------------------------------------------------------------------------------


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    argv: list[str] = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def ensure_binaries(build: bool = True) -> Path:
    """The directory of the control-plane binaries, building them (cached) when missing."""
    if all((K8S_BIN / b).exists() for b in BINARIES):
        return K8S_BIN
    if not build or os.environ.get("GP_K8S_SKIP_BUILD"):
        raise ClusterUnavailable(
            f"Kubernetes binaries missing in {K8S_BIN}; run {BUILD_SCRIPT} (cached, slow once)"
        )
    completed = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
    if completed.returncode != 0 or not all((K8S_BIN / b).exists() for b in BINARIES):
        raise ClusterUnavailable(f"k8s_build.sh failed:\n{completed.stderr[-3000:]}")
    return K8S_BIN


@dataclass
class K8sCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + our node agent."""

    workdir: Path
    images: tuple[str, ...] = (KERNEL_IMAGE,)
    components: list[Component] = field(default_factory=list)
    server: str = ""
    admin_kubeconfig: Path = Path()
    node_agent: Component | None = None
    pki: Pki | None = None
    service_cidr: str = field(default_factory=service_cidr)
    """ClusterIPs on loopback, routed by our service proxy (backends/service_proxy.py)."""
    remove_workdir: bool = False
    """Delete ``workdir`` (logs, certificates) at stop: set for the clusters the tests start;
    GP_K8S_KEEP_CLUSTER_DIR=1 keeps it for a post-mortem."""

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        log = self.workdir / f"{name}.log"
        handle = log.open("ab")
        process = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        handle.close()
        component = Component(name, process, log, argv)
        self.components.append(component)
        return component

    def stop_apiserver(self) -> list[str]:
        """Stop kube-apiserver (as an upgrade would); return its command line."""
        old = next(c for c in self.components if c.name == "kube-apiserver")
        old.stop()
        self.components.remove(old)
        return old.argv

    def start_apiserver(self, argv: list[str], timeout: float = 120) -> None:
        """Start kube-apiserver again: its watch cache starts anew at etcd's current revision,
        so a client resuming from an older resourceVersion gets 410 Gone."""
        self._spawn("kube-apiserver", argv)
        self._wait_ready(timeout)

    def start(self, timeout: float = 120) -> K8sCluster:
        try:
            require("k8s")
        except MissingSystemPackages as err:
            raise ClusterUnavailable(str(err)) from None
        binaries = ensure_binaries()
        etcd = shutil.which("etcd")
        if etcd is None:
            raise ClusterUnavailable("etcd is not installed (apt-get install etcd-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = Pki(self.workdir / "pki", self.service_cidr)
        self.pki = pki  # for nodes that join later (a real kubelet's certificates)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        shm = Path("/dev/shm")
        etcd_dir = Path(tempfile.mkdtemp(prefix="gp-etcd-", dir=shm if shm.is_dir() else None))
        self._etcd_dir = etcd_dir
        self._spawn(
            "etcd",
            [
                etcd,
                "--name=gp-test",
                f"--data-dir={etcd_dir}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=gp-test=http://127.0.0.1:{peer_port}",
                "--log-level=warn",
                "--logger=zap",
            ],
        )
        serving = pki.issue("apiserver", "kube-apiserver", server=True)
        kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver", "system:masters")
        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                str(binaries / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--insecure-port=0",
                "--authorization-mode=Node,RBAC",
                f"--client-ca-file={pki.ca_file}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--kubelet-client-certificate={kubelet_client[0]}",
                f"--kubelet-client-key={kubelet_client[1]}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--service-cluster-ip-range={self.service_cidr}",
                "--endpoint-reconciler-type=none",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki.sa_pub_file}",
                f"--service-account-signing-key-file={pki.sa_key_file}",
                "--allow-privileged=true",
                "--profiling=false",
                "--event-ttl=30m",
                "--max-requests-inflight=800",
                "--max-mutating-requests-inflight=400",
                "--v=1",
            ],
        )
        admin = pki.issue("admin", "gp-admin", "system:masters")
        self.admin_kubeconfig = write_kubeconfig(
            self.workdir / "admin.kubeconfig", self.server, pki.ca_file, *admin, "admin"
        )
        cm = pki.issue("controller-manager", "system:kube-controller-manager")
        cm_config = write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig", self.server, pki.ca_file, *cm, "cm"
        )
        sched = pki.issue("scheduler", "system:kube-scheduler")
        sched_config = write_kubeconfig(
            self.workdir / "scheduler.kubeconfig", self.server, pki.ca_file, *sched, "sched"
        )
        self._wait_ready(timeout)
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries / "kube-controller-manager"),
                f"--kubeconfig={cm_config}",
                "--bind-address=127.0.0.1",
                "--port=0",
                "--secure-port=0",
                "--leader-elect=false",
                "--controllers=*,-nodeipam,-service,-route,-cloud-node-lifecycle",
                f"--service-account-private-key-file={pki.sa_key_file}",
                f"--root-ca-file={pki.ca_file}",
                "--use-service-account-credentials=true",
                "--concurrent-namespace-syncs=10",
                "--concurrent-gc-syncs=10",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(binaries / "kube-scheduler"),
                f"--kubeconfig={sched_config}",
                f"--authentication-kubeconfig={sched_config}",
                f"--authorization-kubeconfig={sched_config}",
                "--bind-address=127.0.0.1",
                "--port=0",
                "--secure-port=0",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        self._spawn(
            "service-proxy",
            [
                sys.executable,
                str(HERE / "service_proxy.py"),
                "--kubeconfig",
                str(self.admin_kubeconfig),
            ],
        )
        self.start_node_agent()
        self._wait_default_service_account(timeout)
        return self

    def start_node_agent(self) -> None:
        self.node_agent = self.add_node_agent(NODE_NAME, images=self.images)

    def add_node_agent(
        self, name: str, *, images: tuple[str, ...] = (), extra: tuple[str, ...] = ()
    ) -> Component:
        """Start one more node agent (a Node called ``name``); ``extra`` are its options,
        e.g. ``--docker-host``, ``--label``, ``--taint``."""
        agent_log = self.workdir / name
        agent_log.mkdir(exist_ok=True)
        return self._spawn(
            name,
            [
                sys.executable,
                str(HERE / "node_agent.py"),
                "--kubeconfig",
                str(self.admin_kubeconfig),
                "--node-name",
                name,
                "--images",
                ",".join(images),
                "--workdir",
                str(agent_log),
                *extra,
            ],
        )

    def remove_node_agent(self, component: Component) -> None:
        """Stop an added node agent (it removes its containers) and delete its Node."""
        from kubernetes.client.exceptions import ApiException

        component.stop()
        if component in self.components:
            self.components.remove(component)
        try:
            raw(self.api_client(), "DELETE", f"/api/v1/nodes/{component.name}")
        except ApiException as err:
            if err.status != 404:
                raise

    def wait_node_ready(self, name: str, timeout: float = 60) -> None:
        from kubernetes.client.exceptions import ApiException

        api = self.api_client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                node = raw(api, "GET", f"/api/v1/nodes/{name}")
                conditions = node.get("status", {}).get("conditions") or []
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    taints = node.get("spec", {}).get("taints") or []
                    if not any(t["key"].startswith("node.kubernetes.io/") for t in taints):
                        return
            except ApiException:
                pass
            time.sleep(0.5)
        raise ClusterUnavailable(f"node {name} not ready")

    def api_client(self) -> Any:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.admin_kubeconfig), client_configuration=configuration
        )
        configuration.connection_pool_maxsize = 16
        return client.ApiClient(configuration)

    def _check_alive(self) -> None:
        for component in self.components:
            code = component.process.poll()
            if code is not None:
                raise ClusterUnavailable(
                    f"{component.name} exited with {code}:\n{component.tail()}"
                )

    def _wait_ready(self, timeout: float) -> None:
        from kubernetes import client

        deadline = time.monotonic() + timeout
        api = self.api_client()
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                serialized = api.param_serialize(
                    method="GET", resource_path="/readyz", auth_settings=["BearerToken"]
                )
                response = api.call_api(*serialized, _request_timeout=5)
                if response.status == 200 and b"ok" in response.read():
                    return
            except (client.exceptions.ApiException, OSError, Exception) as err:
                last = str(err)[:200]
            time.sleep(0.5)
        apiserver = next((c for c in self.components if c.name == "kube-apiserver"), None)
        log = apiserver.tail() if apiserver else ""
        raise ClusterUnavailable(
            f"kube-apiserver not ready in {timeout}s: {last}\nits last log lines:\n{log}"
        )

    def _wait_default_service_account(self, timeout: float) -> None:
        """The controller-manager creates 'default' service accounts (and, in v1.20, their
        token secrets); pods cannot be created in a namespace before that."""
        from kubernetes.client.exceptions import ApiException

        api = self.api_client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                account = raw(api, "GET", "/api/v1/namespaces/default/serviceaccounts/default")
                if account.get("secrets"):
                    node = raw(api, "GET", f"/api/v1/nodes/{NODE_NAME}")
                    conditions = node.get("status", {}).get("conditions") or []
                    ready = [c for c in conditions if c["type"] == "Ready"]
                    # the node lifecycle controller lifts the not-ready taint once it saw Ready
                    taints = node.get("spec", {}).get("taints")
                    if ready and ready[0]["status"] == "True" and not taints:
                        return
            except ApiException:
                pass
            time.sleep(0.5)
        raise ClusterUnavailable(
            "default service account or node not ready:\n"
            + "\n".join(f"--- {c.name}\n{c.tail(10)}" for c in self.components)
        )

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {c.name}\n{c.tail(lines)}" for c in self.components)

    def component_log(self, name: str) -> str:
        """The whole log of the component ``name`` (e.g. ``service-proxy``), "" if none."""
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop every component (also at interpreter exit: nothing here may import)."""
        watch_cache = sys.modules.get("gp_k8s.watch_cache")
        if watch_cache is not None:  # this process's watches (pods, custom resources) would
            kinds = list(watch_cache.WatchCache.__subclasses__())  # only log the shutdown
            while kinds:
                kind = kinds.pop()
                kinds += kind.__subclasses__()
                for cache in kind.instances():
                    try:
                        cache.stop()
                    except Exception:
                        pass
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                try:
                    os.killpg(component.process.pid, signal.SIGKILL)
                except OSError:
                    pass
        self.components.clear()
        shutil.rmtree(getattr(self, "_etcd_dir", ""), ignore_errors=True)
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# -- helpers of the gp-k8s suites -------------------------------------------------------------

KIND_PATHS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def raw(api_client: Any, method: str, path: str, body: Any = None, **query: str) -> Any:
    """One JSON request as the given client (dicts in and out)."""
    import json as _json

    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    serialized = api_client.param_serialize(
        method=method,
        resource_path=path,
        query_params=list(query.items()) or None,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*serialized, _request_timeout=30)
    data = response.read()
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return _json.loads(data) if data else {}


def load_manifests(
    path: Path, replace: dict[str, str] | None = None, cluster_suffix: str = ""
) -> list[dict[str, Any]]:
    """The documents of a YAML manifest file, with namespace names swapped as data, and the
    host application's cluster-scoped role and binding renamed with ``cluster_suffix`` (so
    that several applications of a manifest in one cluster do not overwrite each other)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    own = "gateway-provisioners"
    for doc in docs:
        for holder in [doc.get("metadata", {}), *doc.get("subjects", [])]:
            if replace and holder.get("namespace") in replace:
                holder["namespace"] = replace[holder["namespace"]]
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding") and doc["metadata"]["name"] == own:
            doc["metadata"]["name"] = own + cluster_suffix
        if doc.get("roleRef", {}).get("kind") == "ClusterRole" and doc["roleRef"]["name"] == own:
            doc["roleRef"]["name"] = own + cluster_suffix
    return docs


def apply_manifests(
    api_client: Any, docs: list[dict[str, Any]], *, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Create each document (server-side dry run with ``dry_run``); existing ones are kept."""
    from kubernetes.client.exceptions import ApiException

    created = []
    for doc in docs:
        path = KIND_PATHS[doc["kind"]].format(ns=doc["metadata"].get("namespace", ""))
        query = {"dryRun": "All"} if dry_run else {}
        try:
            created.append(raw(api_client, "POST", path, doc, **query))
        except ApiException as err:
            if err.status != 409:
                raise
            if dry_run:  # already there: validate the update instead (as apply would)
                item = f"{path}/{doc['metadata']['name']}"
                current = raw(api_client, "GET", item)
                body = dict(doc, metadata=dict(doc["metadata"], **_version(current)))
                created.append(raw(api_client, "PUT", item, body, **query))
    return created


def _version(obj: dict[str, Any]) -> dict[str, str]:
    return {"resourceVersion": obj["metadata"]["resourceVersion"]}


def ensure_namespace(api_client: Any, name: str, timeout: float = 60) -> None:
    """Create ``name`` if needed and wait for its default service account's token (v1.20
    admission refuses pods until the controller-manager made it)."""
    apply_manifests(
        api_client, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}]
    )
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            account = raw(api_client, "GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            if account.get("secrets"):
                return
        except ApiException:
            pass
        time.sleep(0.2)
    raise ClusterUnavailable(f"namespace {name}: no default service account token")


def can(
    api_client: Any, user: str, verb: str, resource: str, namespace: str = "", **extra: str
) -> bool:
    """A SubjectAccessReview: may ``user`` (system:serviceaccount:NS:NAME) do this?"""
    groups = ["system:authenticated"]
    if user.startswith("system:serviceaccount:"):
        groups += ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": groups,
            "resourceAttributes": {
                "verb": verb,
                "resource": resource,
                "namespace": namespace,
                **extra,
            },
        },
    }
    answer = raw(api_client, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


def wait_until_allowed(
    api_client: Any, user: str, *check: str, timeout: float = 15, **extra: str
) -> None:
    """New RBAC reaches the authorizer through informers: wait until a grant is visible."""
    deadline = time.monotonic() + timeout
    while not can(api_client, user, *check, **extra):
        if time.monotonic() > deadline:
            raise ClusterUnavailable(f"{user} still may not {' '.join(check)}")
        time.sleep(0.2)


def service_account_kubeconfig(cluster: K8sCluster, namespace: str, name: str) -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` with its token
    (v1.20: the token secret the controller-manager creates for it)."""
    import base64

    api = cluster.api_client()
    deadline = time.monotonic() + 60
    token = ""
    while not token and time.monotonic() < deadline:
        account = raw(api, "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
        for ref in account.get("secrets") or []:
            secret = raw(api, "GET", f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
            token = base64.b64decode((secret.get("data") or {}).get("token", "")).decode()
        if not token:
            time.sleep(0.3)
    if not token:
        raise ClusterUnavailable(f"no token for service account {namespace}/{name}")
    config = yaml.safe_load(cluster.admin_kubeconfig.read_text())
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = name
    path = cluster.workdir / f"sa-{namespace}-{name}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def kernel_objects(api_client: Any, kernel_id: str) -> list[str]:
    """Pods, Secrets and Namespaces labelled with ``kernel_id``, cluster-wide."""
    found = []
    selector = f"kernel-id={kernel_id}"
    for kind, path in (
        ("pod", "/api/v1/pods"),
        ("secret", "/api/v1/secrets"),
        ("namespace", "/api/v1/namespaces"),
    ):
        for item in raw(api_client, "GET", path, labelSelector=selector).get("items") or []:
            meta = item["metadata"]
            found.append(f"{kind} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " "))
    return sorted(found)


def processes_of(text: str) -> list[str]:
    """Live processes whose command line contains ``text`` (e.g. a kernel id)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in argv and state != "Z":
            found.append(f"pid {entry.name}: {argv[:160]}")
    return found


def pid_alive(pid: int) -> bool:
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kernel_process_alive(pid: int, kernel_id: str) -> bool:
    """Whether ``pid`` is a live process of kernel ``kernel_id`` on this host: alive, and its
    command line or environment names the kernel.

    The launcher reports PIDs as it sees them: host PIDs under the node agent, which runs pods
    as local processes, but PIDs of the container's own namespace on a real kubelet (1, 7...),
    which on the host are unrelated processes (1 is init).  Those never name the kernel, so
    they do not count; the kernel's processes in a container are found on the host by
    ``processes_of(kernel_id)`` instead."""
    if not pid_alive(pid):
        return False
    marker = kernel_id.encode()
    for part in ("cmdline", "environ"):
        try:
            if marker in Path(f"/proc/{pid}/{part}").read_bytes():
                return True
        except OSError:
            continue
    return False


def install_kernelspec(prefix: Path, name: str, *flags: str) -> str:
    """``jupyter k8s-spec install`` a spec whose container runs the launcher of this checkout
    with this Python (the node agent runs it as a local process); ``flags`` come last, so
    they may override these."""
    from gp_k8s.cli import main as install

    install(
        [
            "install",
            "--prefix",
            str(prefix),
            "--kernel-name",
            name,
            "--image-name",
            KERNEL_IMAGE,
            "--python",
            sys.executable,
            "--image-launcher",
            "{resource_dir}/scripts/launch_ipykernel.py",
            "--replace",
            *flags,
        ]
    )
    return name


_shared: K8sCluster | None = None
_shared_error: str = ""


def shared_cluster() -> K8sCluster:
    """This test process's cluster, started on first use and stopped at exit."""
    global _shared, _shared_error
    if _shared is not None:
        return _shared
    if _shared_error:
        raise ClusterUnavailable(_shared_error)
    existing = os.environ.get("GP_K8S_CLUSTER_DIR", "")
    if existing:
        # A cluster started by hand (python k8s_cluster.py): reuse it, do not stop it.
        reused = K8sCluster(Path(existing))
        reused.admin_kubeconfig = reused.workdir / "admin.kubeconfig"
        reused.server = yaml.safe_load(reused.admin_kubeconfig.read_text())["clusters"][0][
            "cluster"
        ]["server"]
        _shared = reused
        return reused
    workdir = Path(tempfile.mkdtemp(prefix="gp-k8s-cluster-"))
    cluster = K8sCluster(workdir)
    cluster.remove_workdir = not os.environ.get("GP_K8S_KEEP_CLUSTER_DIR")
    try:
        cluster.start()
    except Exception as err:
        cluster.stop()
        _shared_error = str(err)
        raise
    atexit.register(cluster.stop)
    _shared = cluster
    return cluster


def run_idle_request_bench(counts: tuple[int, ...] = (5, 50)) -> str:
    """Bring up the cluster, start kernels up to each count, and return the table of gp-k8s
    API requests per 3-second interval while they idle (``nox -s bench`` prints it)."""
    import asyncio

    from backends.k8s_bench import format_table, idle_request_table
    from gp_provisioners_core.testing import isolated_jupyter_paths

    cluster = shared_cluster()
    namespace = "gp-bench"
    ensure_namespace(cluster.api_client(), namespace)
    saved = {name: os.environ.get(name) for name in ("GP_RESPONSE_IP", "GP_KUBECONFIG")}
    os.environ.setdefault("GP_RESPONSE_IP", "127.0.0.1")
    os.environ["GP_KUBECONFIG"] = str(cluster.admin_kubeconfig)
    root = Path(tempfile.mkdtemp(prefix="gp-k8s-bench-"))
    try:
        with isolated_jupyter_paths(root) as prefix:
            name = install_kernelspec(
                prefix, "gp_k8s_bench", "--namespace", namespace, "--launch-timeout", "600"
            )
            env = dict(os.environ, KERNEL_USERNAME="bench")
            rows = asyncio.run(idle_request_table(name, counts, env))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return format_table(rows)


def run_stop_bench(runs: int = 3, teardown: int = 30) -> str:
    """Bring up the cluster and time, with a node that keeps deleted pods ``teardown`` seconds
    (as a real kubelet does): a launch whose sandbox fails, and ``shutdown(now=True)`` of a
    running kernel: when the call returned, and when the reaper saw the pod go.  Returns the
    table (``nox -s bench`` prints it)."""
    import asyncio
    import statistics

    from jupyter_client.manager import AsyncKernelManager

    from gp_k8s.reaper import Reaper
    from gp_provisioners_core.errors import LaunchFailedError
    from gp_provisioners_core.testing import isolated_jupyter_paths

    cluster = shared_cluster()
    namespace = "gp-bench-stop"
    ensure_namespace(cluster.api_client(), namespace)
    root = Path(tempfile.mkdtemp(prefix="gp-k8s-bench-stop-"))
    delay = f'    gp-test.node-agent/deletion-delay: "{teardown}"\n'
    head = "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n"
    (root / "slow.yaml").write_text(head + delay)
    (root / "sandbox.yaml").write_text(
        head + delay + "    gp-test.node-agent/stuck: 'FailedCreatePodSandBox: bench'\n"
    )
    env = dict(
        os.environ,
        KERNEL_USERNAME="bench",
        GP_RESPONSE_IP="127.0.0.1",
        GP_KUBECONFIG=str(cluster.admin_kubeconfig),
    )
    rows: dict[str, list[tuple[float, float]]] = {"failed launch": [], "shutdown(now=True)": []}

    async def reaped(kernel_id: str, since: float) -> float:
        await Reaper.shared().settled(kernel_id, teardown + 120)
        return time.monotonic() - since

    async def bench() -> None:
        saved = {k: os.environ.get(k) for k in ("GP_RESPONSE_IP", "GP_KUBECONFIG")}
        os.environ.update({k: env[k] for k in saved})
        try:
            for _ in range(runs):
                manager = AsyncKernelManager(kernel_name="gp_k8s_bench_sandbox")
                started = time.monotonic()
                try:
                    await manager.start_kernel(env=env)
                except LaunchFailedError:
                    pass
                returned = time.monotonic() - started
                rows["failed launch"].append(
                    (returned, await reaped(str(manager.kernel_id), started))
                )
                manager = AsyncKernelManager(kernel_name="gp_k8s_bench_slow")
                await manager.start_kernel(env=env)
                started = time.monotonic()
                await manager.shutdown_kernel(now=True)
                returned = time.monotonic() - started
                rows["shutdown(now=True)"].append(
                    (returned, await reaped(str(manager.kernel_id), started))
                )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    try:
        with isolated_jupyter_paths(root) as prefix:
            common = ("--namespace", namespace, "--launch-timeout", "120")
            for name in ("slow", "sandbox"):
                install_kernelspec(
                    prefix,
                    f"gp_k8s_bench_{name}",
                    *common,
                    "--pod-template",
                    str(root / f"{name}.yaml"),
                )
            asyncio.run(bench())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = [
        f"gp-k8s stops with a node that keeps deleted pods {teardown}s (median of {runs}):",
        f"{'case':<20} {'call returned (s)':>18} {'pod gone (s)':>13}",
    ]
    for case, samples in rows.items():
        returned = statistics.median(r for r, _ in samples)
        gone = statistics.median(g for _, g in samples)
        lines.append(f"{case:<20} {returned:>18.2f} {gone:>13.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    # python k8s_cluster.py            bring a cluster up by hand (Ctrl-C stops it)
    # python k8s_cluster.py bench [5,50]   print idle API requests per interval
    # python k8s_cluster.py bench-stop [runs]   print how long failed launches and stops take
    if sys.argv[1:2] == ["bench-stop"]:
        print(run_stop_bench(int(sys.argv[2]) if len(sys.argv) > 2 else 3))
        sys.exit(0)
    if sys.argv[1:2] == ["bench"]:
        wanted = tuple(int(n) for n in (sys.argv[2] if len(sys.argv) > 2 else "5,50").split(","))
        print(run_idle_request_bench(wanted))
        sys.exit(0)
    up = shared_cluster()
    print(f"kubeconfig: {up.admin_kubeconfig}\nlogs: {up.workdir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    up.stop()
