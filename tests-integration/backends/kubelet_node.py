"""A REAL, PATCHED kubelet node on loopback for the gp-k8s suites (GP_K8S_REAL_KUBELET=0: none).

Never a stock kubelet: ``kubelet_build.sh`` builds one from Debian's kubernetes source tree with
the cloud credential providers removed and a loopback node IP allowed (shared
notes/kubernetes.md).  Around it, everything stays on this machine:

- its own containerd (Debian's, 1.6) with its own root, state, socket and config; every registry
  (``_default`` included) resolves to ``http://127.0.0.1:1`` through ``certs.d``, so a missing
  image fails here instead of being fetched; ``restrict_oom_score_adj`` (root lacks
  CAP_SYS_RESOURCE here);
- the sandbox image ``k8s.gcr.io/pause:3.2`` is the upstream pause.c compiled statically, and
  the kernel image ``gp-test/host-python:1`` is an empty root whose pods mount the host's
  ``/usr`` (and the folders of this checkout and the test's Jupyter paths): both imported with
  ``ctr images import`` from archives written here;
- CNI: one loopback-only conflist (Debian's containernetworking-plugins), so the runtime is
  ready: only ``hostNetwork`` pods run;
- the host sysctls the kubelet sets at start (``vm.overcommit_memory``, ``kernel.panic``,
  ``kernel.panic_on_oops``) are saved before and restored after;
- kubelet and containerd run under ``strace -f``: :meth:`KubeletNode.stop` lists every
  connect/sendto/sendmsg destination of both and their children, and :func:`off_loopback`
  names any outside 127.0.0.0/8 and ::1 (the suite fails on one).
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "kubelet_build.sh"
NODE_NAME = "localhost"
PAUSE_IMAGE = "k8s.gcr.io/pause:3.2"
HOST_IMAGE = "gp-test/host-python:1"
HOST_LATEST = "gp-test/host-python:latest"
TAINT_KEY = "gp-test/real-kubelet"
"""The node's NoSchedule taint: pods of the node agent's suites never land on it."""
"""The same image under ``latest``: with no pull policy the API would make it ``Always``."""


def containerd_name(image: str) -> str:
    """The name containerd stores ``image`` under (Docker Hub's domain made explicit)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


REGISTRIES = ("_default", "docker.io", "k8s.gcr.io", "registry.k8s.io", "gcr.io", "quay.io")
SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
CNI_BIN = Path("/usr/lib/cni")
ENABLED = os.environ.get("GP_K8S_REAL_KUBELET", "1") != "0"


class KubeletUnavailable(RuntimeError):
    pass


def ensure_kubelet(cache_bin: Path) -> tuple[Path, Path]:
    """The patched kubelet and the static pause binary, built (cached) when missing."""
    from backends.system_packages import missing_packages_message

    missing = missing_packages_message("kubelet")
    if missing:  # before building anything: gcc and libc6-dev build the pause binary
        raise KubeletUnavailable(missing)
    kubelet, pause = cache_bin / "kubelet-loopback", cache_bin / "pause-static"
    if not (kubelet.exists() and pause.exists()):
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
        if done.returncode != 0 or not kubelet.exists():
            raise KubeletUnavailable(f"kubelet_build.sh failed:\n{done.stderr[-3000:]}")
    for tool in ("containerd", "ctr", "runc", "strace"):
        if shutil.which(tool) is None:
            raise KubeletUnavailable(f"{tool} is not installed (scripts/bootstrap.sh)")
    if not (CNI_BIN / "loopback").exists():
        raise KubeletUnavailable(
            "no CNI loopback plugin (apt-get install containernetworking-plugins)"
        )
    return kubelet, pause


def docker_archive(
    name: str, files: dict[str, tuple[bytes, int]], symlinks: dict[str, str]
) -> bytes:
    """A ``docker save`` archive of a one-layer image ``name`` (for ``ctr images import``)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for path, target in symlinks.items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for directory in ("dev", "proc", "sys", "etc", "tmp", "usr", "work", "root", "run"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    import hashlib

    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"] if "pause" in files else None},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_bytes = json.dumps(config).encode()
    manifest = [{"Config": "config.json", "RepoTags": [name], "Layers": ["layer.tar"]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, data in (
            ("config.json", config_bytes),
            ("layer.tar", layer_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


_ADDRESS = re.compile(
    r'(?:sin_addr=inet_addr\("(?P<v4>[^"]+)"\)|inet_pton\(AF_INET6, "(?P<v6>[^"]+)")'
)


def destinations(trace: str) -> list[str]:
    """Every IP address a traced process connected or sent to (strace output)."""
    found = []
    for line in trace.splitlines():
        if not any(call in line for call in ("connect(", "sendto(", "sendmsg(")):
            continue
        for match in _ADDRESS.finditer(line):
            found.append(match.group("v4") or match.group("v6"))
    return found


def off_loopback(addresses: list[str]) -> list[str]:
    """The addresses outside 127.0.0.0/8 and ::1 (0.0.0.0 / :: count: they are not loopback)."""
    bad = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_loopback:
            bad.append(text)
    return sorted(set(bad))


@dataclass
class KubeletNode:
    """containerd + patched kubelet registered as Node ``localhost`` with the cluster."""

    workdir: Path
    server: str
    ca_file: Path
    client_cert: tuple[Path, Path]
    serving_cert: tuple[Path, Path]
    kubelet: Path
    pause: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    connections: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    def start(self, timeout: float = 90) -> KubeletNode:
        self.sysctls = {name: _sysctl(name) for name in SYSCTLS}
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_containerd()
        self._import_images()
        self._start_kubelet()
        return self

    # -- containerd ------------------------------------------------------------------------

    def _start_containerd(self) -> None:
        base = self.workdir / "containerd"
        certs = base / "certs.d"
        for registry in REGISTRIES:
            (certs / registry).mkdir(parents=True, exist_ok=True)
            (certs / registry / "hosts.toml").write_text(
                'server = "http://127.0.0.1:1"\n\n[host."http://127.0.0.1:1"]\n'
                '  capabilities = ["pull", "resolve"]\n'
            )
        cni = base / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-loopback.conflist").write_text(
            json.dumps(
                {"cniVersion": "0.4.0", "name": "gp-loopback", "plugins": [{"type": "loopback"}]}
            )
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        (base / "config.toml").write_text(
            "\n".join(
                [
                    "version = 2",
                    f'root = "{base / "root"}"',
                    f'state = "{base / "state"}"',
                    "[grpc]",
                    f'  address = "{self.socket}"',
                    "[ttrpc]",
                    f'  address = "{base / "ttrpc.sock"}"',
                    f"[{cri}]",
                    f'  sandbox_image = "{PAUSE_IMAGE}"',
                    "  restrict_oom_score_adj = true",
                    '  stream_server_address = "127.0.0.1"',
                    f"[{cri}.cni]",
                    f'  bin_dir = "{CNI_BIN}"',
                    f'  conf_dir = "{cni}"',
                    f"[{cri}.registry]",
                    f'  config_path = "{certs}"',
                    f"[{cri}.containerd.runtimes.runc]",
                    '  runtime_type = "io.containerd.runc.v2"',
                    "",
                ]
            )
        )
        self._spawn("containerd", ["containerd", "--config", str(base / "config.toml")])
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if time.monotonic() > deadline:
                raise KubeletUnavailable(f"containerd did not start:\n{self.tail('containerd')}")
            time.sleep(0.2)

    def ctr(self, *args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", "k8s.io", *args],
            input=stdin,
            capture_output=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise KubeletUnavailable(f"ctr {' '.join(args)}: {done.stderr.decode()[-2000:]}")
        return done.stdout.decode()

    def _import_images(self) -> None:
        pause = docker_archive(PAUSE_IMAGE, {"pause": (self.pause.read_bytes(), 0o755)}, {})
        links = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
        host = docker_archive(containerd_name(HOST_IMAGE), {}, links)
        for name, data in (("pause", pause), ("host", host)):
            archive = self.workdir / f"{name}.tar"
            archive.write_bytes(data)
            self.ctr("images", "import", "--no-unpack=false", str(archive))

    # -- kubelet ---------------------------------------------------------------------------

    def _start_kubelet(self) -> None:
        base = self.workdir / "kubelet"
        base.mkdir(parents=True, exist_ok=True)
        kubeconfig = base / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "gp",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(self.ca_file),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": "kubelet",
                            "user": {
                                "client-certificate": str(self.client_cert[0]),
                                "client-key": str(self.client_cert[1]),
                            },
                        }
                    ],
                    "contexts": [{"name": "gp", "context": {"cluster": "gp", "user": "kubelet"}}],
                    "current-context": "gp",
                }
            )
        )
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": _free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.ca_file)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "tlsCertFile": str(self.serving_cert[0]),
            "tlsPrivateKeyFile": str(self.serving_cert[1]),
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "makeIPTablesUtilChains": False,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "clusterDomain": "cluster.local",
        }
        (base / "config.yaml").write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            [
                str(self.kubelet),
                f"--config={base / 'config.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={base / 'root'}",
                f"--cert-dir={base / 'pki'}",
                "--container-runtime=remote",
                f"--container-runtime-endpoint=unix://{self.socket}",
                "--node-ip=127.0.0.1",
                f"--hostname-override={NODE_NAME}",
                f"--pod-infra-container-image={PAUSE_IMAGE}",
                "--register-node=true",
                # only pods made for this node (host_pod_template tolerates it) land here
                f"--register-with-taints={TAINT_KEY}=true:NoSchedule",
                "--v=1",
            ],
        )

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.workdir / f"{name}.log"
        trace = self.workdir / f"{name}.strace"
        traced = [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=connect,sendto,sendmsg",
            "-o",
            str(trace),
            *argv,
        ]
        with log.open("ab") as handle:
            self.processes.append(
                subprocess.Popen(
                    traced,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def stop(self) -> list[str]:
        """Stop the kubelet, every pod's containers and containerd; restore the sysctls.
        Return every destination address the traced processes used."""
        import signal

        if self.socket.exists():  # the pods' containers first: they outlive their shims
            try:
                for task in self.ctr("tasks", "ls", "-q").split():
                    subprocess.run(
                        [
                            "ctr",
                            "--address",
                            str(self.socket),
                            "-n",
                            "k8s.io",
                            "tasks",
                            "kill",
                            "-a",
                            "-s",
                            "SIGKILL",
                            task,
                        ],
                        capture_output=True,
                        timeout=30,
                    )
            except (KubeletUnavailable, subprocess.TimeoutExpired):
                pass
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(15)
                except (OSError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except OSError:
                        pass
        # containers and shims outlive containerd: kill what runs under our state folder
        state = str(self.workdir / "containerd")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if state in cmdline:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass
        # the kubelet's volume mounts (tmpfs secrets) and containerd's rootfs mounts
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.workdir))), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=30)
        for name, value in self.sysctls.items():
            _sysctl(name, value)
        self.connections = []
        for trace in self.workdir.glob("*.strace*"):
            self.connections += destinations(trace.read_text(errors="replace"))
        return self.connections


def _sysctl(name: str, value: str | None = None) -> str:
    path = Path("/proc/sys") / name.replace(".", "/")
    if value is not None:
        path.write_text(value)
    return path.read_text().strip()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def join_node(cluster: Any, workdir: Path) -> KubeletNode:
    """Build (or take from the cache) the patched kubelet, start it over its own containerd as
    Node ``localhost`` of ``cluster`` (a ``backends.k8s_cluster.K8sCluster``) and wait until
    the node is Ready; ``HOST_IMAGE`` is also tagged ``:latest`` on it.  The caller stops the
    node (:meth:`KubeletNode.stop`) and checks the destinations it returns."""
    from backends.k8s_cluster import K8S_BIN

    kubelet, pause = ensure_kubelet(K8S_BIN)
    pki = cluster.pki
    if pki is None:
        raise KubeletUnavailable("the cluster keeps no PKI for joining nodes")
    node = KubeletNode(
        workdir=workdir,
        server=cluster.server,
        ca_file=pki.ca_file,
        client_cert=pki.issue("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
        serving_cert=pki.issue("kubelet-serving", NODE_NAME, server=True),
        kubelet=kubelet,
        pause=pause,
    )
    try:
        node.start()
        node.ctr("images", "tag", containerd_name(HOST_IMAGE), containerd_name(HOST_LATEST))
        cluster.wait_node_ready(NODE_NAME, timeout=90)
    except BaseException:
        node.stop()
        raise
    return node


def leave(cluster: Any, node: KubeletNode) -> list[str]:
    """Stop ``node`` and remove its Node object from ``cluster`` (later suites see only the
    node agent); returns the destinations :meth:`KubeletNode.stop` traced."""
    from backends.k8s_cluster import raw

    destinations = node.stop()
    try:
        raw(cluster.api_client(), "DELETE", f"/api/v1/nodes/{NODE_NAME}")
    except Exception as err:  # already gone, or the cluster is stopping: say so, go on
        print(f"kubelet node: could not delete Node {NODE_NAME}: {err}")
    return destinations


def host_pod_template(mounts: list[str], home: str) -> dict[str, Any]:
    """A pod template that runs a kernel of the host's Python on the real node: host network,
    the image ``HOST_IMAGE``, the host folders ``mounts`` (``/usr`` among them) mounted at the
    same paths, and ``HOME`` (the image has no /etc/passwd) set to ``home``."""
    volumes, volume_mounts = [], []
    for index, path in enumerate(mounts):
        volumes.append({"name": f"host-{index}", "hostPath": {"path": path}})
        volume_mounts.append({"name": f"host-{index}", "mountPath": path})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {
            "hostNetwork": True,
            "nodeSelector": {"kubernetes.io/hostname": NODE_NAME},
            "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "kernel",
                    "volumeMounts": volume_mounts,
                    "env": [{"name": "HOME", "value": home}],
                }
            ],
            "volumes": volumes,
        },
    }


def run_start_bench(runs: int = 3) -> str:
    """Bring up the cluster and the real node next to the node agent, then start and stop a
    kernel ``runs`` times on each: start_kernel() to the first kernel_info_reply, and
    shutdown(now=True).  Returns the table of medians (``nox -s bench`` prints it)."""
    import asyncio
    import statistics
    import sys
    import tempfile
    from unittest import mock

    from backends.k8s_bench import start_kernels
    from backends.k8s_cluster import ensure_namespace, install_kernelspec, shared_cluster
    from gp_k8s.reaper import Reaper
    from gp_provisioners_core.testing import isolated_jupyter_paths

    cluster = shared_cluster()
    namespace = "gp-bench-start"
    ensure_namespace(cluster.api_client(), namespace)
    root = Path(tempfile.mkdtemp(prefix="gp-kubelet-bench-"))
    node = join_node(cluster, root / "node")
    checkout = str(HERE.parents[1])
    mounts = {"/usr", str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve())}
    mounts |= {checkout, str(root)}
    (root / "home").mkdir()
    template = root / "host-python.yaml"
    template.write_text(yaml.safe_dump(host_pod_template(sorted(mounts), str(root / "home"))))
    env = dict(
        os.environ,
        KERNEL_USERNAME="bench",
        GP_RESPONSE_IP="127.0.0.1",
        GP_KUBECONFIG=str(cluster.admin_kubeconfig),
    )
    rows: dict[str, list[tuple[float, float]]] = {}

    async def bench(kernel_name: str) -> tuple[float, float]:
        started = time.monotonic()
        (manager,) = await start_kernels(kernel_name, 1, env)
        ready = time.monotonic() - started
        started = time.monotonic()
        await manager.shutdown_kernel(now=True)
        stopped = time.monotonic() - started
        await Reaper.shared().settled(str(manager.kernel_id), 120)
        return ready, stopped

    try:
        with isolated_jupyter_paths(root / "jupyter") as prefix:
            common = ["--namespace", namespace, "--launch-timeout", "120"]
            specs = {
                "node agent": install_kernelspec(prefix, "gp_bench_agent", *common),
                "real kubelet": install_kernelspec(
                    prefix,
                    "gp_bench_kubelet",
                    *common,
                    "--image-name",
                    HOST_LATEST,
                    "--pod-template",
                    str(template),
                ),
            }
            wanted = {k: env[k] for k in ("GP_RESPONSE_IP", "GP_KUBECONFIG")}

            async def all_runs() -> None:
                for label, name in specs.items():
                    rows[label] = [await bench(name) for _ in range(runs)]

            with mock.patch.dict(os.environ, wanted):
                asyncio.run(all_runs())
    finally:
        bad = off_loopback(leave(cluster, node))
        shutil.rmtree(root, ignore_errors=True)
    lines = [
        f"gp-k8s start-to-ready and shutdown(now=True), median of {runs} (seconds)",
        f"{'node':<14} {'ready':>7} {'shutdown':>9}",
    ]
    for label, figures in rows.items():
        ready = statistics.median(f[0] for f in figures)
        stopped = statistics.median(f[1] for f in figures)
        lines.append(f"{label:<14} {ready:>7.2f} {stopped:>9.2f}")
    lines.append(f"real kubelet traffic outside loopback: {bad or 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    # python kubelet_node.py bench [runs]: start-to-ready on the real node and the node agent
    import sys

    sys.path.insert(0, str(HERE.parent))
    print(run_start_bench(int(sys.argv[2]) if len(sys.argv) > 2 else 3))
