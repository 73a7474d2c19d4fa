"""A private dockerd and a single-node Swarm on loopback, for the gp-docker suites.

``DockerDaemon`` starts ``dockerd`` the safe way for a shared machine: its own unix socket,
exec root and pid file (never ``/var/run/docker.sock``), its own containerd namespace,
``--bridge=none`` (no docker0), no iptables / masquerading / forwarding / ip6tables, no
userland proxy, and ``--default-address-pool base=10.254.0.0/16,size=24`` so that any bridge
it makes lives on a subnet we chose.  ``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1`` keeps Swarm
from pulling.  Kernels run on the host network only.

``SingleNodeSwarm`` makes that daemon a Swarm manager advertised and listening on 127.0.0.1 (a
free port), after pre-creating ``docker_gwbridge`` on a free 10.254.x.0/24 subnet with its own
Linux bridge name, and removes the ``ingress`` overlay (there is no IPVS here: only host
networking is used).

The data root is kept between runs under ``~/.cache/gateway-provisioners/dockerd``
(``GP_DOCKER_CACHE_DIR`` or ``GP_CACHE_DIR``) so the kernel image stays loaded; a second
concurrent run takes a temporary data root and loads the image from the tarball that
``docker-images/build.py`` caches.  Every process stopped here is one started here (or by an
earlier run, recorded in the pid file).

Usable on its own::

    cd tests-integration && python -m backends.dockerd   # start, print DOCKER_HOST, wait
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

if not __package__:  # run as a script (nox -s bench): make the ``backends`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backends.system_packages import missing_packages_message
from gp_provisioners_core.images import DEFAULT_PREFIX, default_image

REPO = Path(__file__).resolve().parents[2]
# The machine's cache, like the Kubernetes harness's: found without scripts/bootstrap.sh having
# exported anything (GP_DOCKER_CACHE_DIR or GP_CACHE_DIR move it).
CACHE_DIR = Path(
    os.getenv("GP_DOCKER_CACHE_DIR")
    or os.getenv("GP_CACHE_DIR")
    or Path.home() / ".cache" / "gateway-provisioners"
)
# The default image of the installers, as docker-images/build.py tags it (a fixed version)
KERNEL_IMAGE = default_image("python", DEFAULT_PREFIX)
KERNEL_LABEL = "gp.kernel-id"
ADDRESS_POOL = "10.254.0.0/16"
SWARM_ADDR_POOL = "10.254.0.0/20"
GWBRIDGE_CANDIDATES = [f"10.254.{n}.0/24" for n in range(254, 199, -1)]
SAFE_FLAGS = (
    "--bridge=none",
    "--iptables=false",
    "--ip-masq=false",
    "--ip-forward=false",
    "--ip6tables=false",
    "--userland-proxy=false",
    f"--default-address-pool=base={ADDRESS_POOL},size=24",
    "--storage-driver=overlay2",
    "--log-level=warn",
)


class BackendUnavailable(RuntimeError):
    """The docker suites cannot run here; the message says why (used as the skip reason)."""


def dockerd_available() -> str:
    """'' when a private dockerd can run here, else the reason (the suites fail with it)."""
    missing = missing_packages_message("docker")
    if missing:
        return missing
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "dockerd needs root"
    if importlib.util.find_spec("docker") is None:
        return "the docker SDK is not installed (pip install gp-docker)"
    return ""


def _pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (state Z, not reaped yet) counts as dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _used_networks() -> list[ipaddress.IPv4Network]:
    try:
        listing = subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    used = []
    for line in listing.splitlines():
        parts = line.split()
        if "inet" in parts:
            used.append(ipaddress.ip_network(parts[parts.index("inet") + 1], strict=False))
    return [n for n in used if isinstance(n, ipaddress.IPv4Network)]


def pick_gwbridge_subnet() -> str:
    """A 10.254.x.0/24 subnet no interface on this host uses."""
    used = _used_networks()
    for candidate in GWBRIDGE_CANDIDATES:
        network = ipaddress.IPv4Network(candidate)
        if not any(network.overlaps(u) for u in used):
            return candidate
    raise BackendUnavailable("no free 10.254.x.0/24 subnet for docker_gwbridge")


@dataclass
class DockerDaemon:
    """One private dockerd.  ``start()`` then ``client()``; ``stop()`` at the end."""

    cache_dir: Path = CACHE_DIR / "dockerd"
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gpd-")))
    data_root: Path = Path()
    process: subprocess.Popen[bytes] | None = None
    persistent: bool = False
    _lock: IO[str] | None = None
    _log: IO[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.state_dir / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "dockerd.log"

    @property
    def pid_file(self) -> Path:
        return (self.cache_dir if self.persistent else self.state_dir) / "dockerd.pid"

    def argv(self) -> list[str]:
        namespace = f"gp-moby-{os.getpid()}"
        return [
            "dockerd",
            f"--host={self.base_url}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.state_dir / 'exec'}",
            f"--pidfile={self.pid_file}",
            f"--containerd-namespace={namespace}",
            f"--containerd-plugins-namespace={namespace}-plugins",
            *SAFE_FLAGS,
        ]

    def _choose_data_root(self) -> None:
        """The persistent data root when no other run holds it, else a temporary one."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.cache_dir / "dockerd.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            self.data_root = self.state_dir / "data"
            return
        self._lock = lock
        self.persistent = True
        self.data_root = self.cache_dir / "data"
        self._stop_orphan()

    def _stop_orphan(self) -> None:
        """Stop a dockerd an earlier, crashed run left on the persistent data root."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return
        if "dockerd" not in cmdline or f"--data-root={self.data_root}" not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self, timeout: float = 60.0) -> DockerDaemon:
        reason = dockerd_available()
        if reason:
            raise BackendUnavailable(reason)
        self._choose_data_root()
        env = dict(os.environ, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE="1")
        env.pop("DOCKER_HOST", None)
        self._log = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise BackendUnavailable(f"dockerd exited at start-up: {self.log_tail()}")
            if self.socket.exists():
                with contextlib.suppress(Exception):
                    self.client().ping()
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise BackendUnavailable(f"dockerd did not answer in {timeout}s: {self.log_tail()}")
            time.sleep(0.1)
        self.remove_kernel_containers()
        return self

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.base_url, timeout=60)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kernel_containers(self) -> list[str]:
        """``name (status)`` of every container labelled with a kernel id."""
        containers = self.client().containers.list(all=True, filters={"label": KERNEL_LABEL})
        return [f"{c.name} ({c.status})" for c in containers]

    def remove_kernel_containers(self) -> None:
        client = self.client()
        with contextlib.suppress(Exception):
            for service in client.services.list(filters={"label": KERNEL_LABEL}):
                service.remove()
        for container in client.containers.list(all=True, filters={"label": KERNEL_LABEL}):
            with contextlib.suppress(Exception):
                container.remove(force=True)

    def stop(self, timeout: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(Exception):
                self.remove_kernel_containers()
            with contextlib.suppress(Exception):
                SingleNodeSwarm.remove_gwbridge(self.client())
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
        self._unmount_leftovers()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _unmount_leftovers(self) -> None:
        """dockerd leaves the default netns bind-mounted under its exec root: unmount it."""
        try:
            mounts = Path("/proc/self/mounts").read_text().splitlines()
        except OSError:
            return
        prefix = f"{self.state_dir}/"
        points = [line.split()[1] for line in mounts if len(line.split()) > 1]
        for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@dataclass
class SingleNodeSwarm:
    """Makes ``daemon`` a single-node Swarm manager on 127.0.0.1; ``leave()`` undoes it."""

    daemon: DockerDaemon
    port: int = 0
    subnet: str = ""
    bridge_name: str = ""

    def init(self, timeout: float = 30.0) -> SingleNodeSwarm:
        from docker.types import IPAMConfig, IPAMPool

        client = self.daemon.client()
        if client.info()["Swarm"].get("LocalNodeState") != "inactive":
            client.swarm.leave(force=True)
        self.remove_gwbridge(client)
        self.subnet = pick_gwbridge_subnet()
        self.bridge_name = f"gpgw{os.getpid() % 100000}"
        client.networks.create(
            "docker_gwbridge",
            driver="bridge",
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=self.subnet)]),
            options={
                "com.docker.network.bridge.name": self.bridge_name,
                "com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.enable_ip_masquerade": "false",
            },
        )
        self.port = _free_port()
        client.swarm.init(
            advertise_addr=f"127.0.0.1:{self.port}",
            listen_addr=f"127.0.0.1:{self.port}",
            default_addr_pool=[SWARM_ADDR_POOL],
            subnet_size=24,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ingress = client.networks.list(names=["ingress"])
            if ingress:
                try:
                    ingress[0].remove()
                    break
                except Exception:
                    pass
            time.sleep(0.2)
        else:
            raise BackendUnavailable("swarm init did not create (or let us remove) 'ingress'")
        return self

    @staticmethod
    def remove_gwbridge(client: Any) -> None:
        for network in client.networks.list(names=["docker_gwbridge"]):
            with contextlib.suppress(Exception):
                network.remove()

    def leave(self) -> None:
        with contextlib.suppress(Exception):
            client = self.daemon.client()
            client.swarm.leave(force=True)
            self.remove_gwbridge(client)


def _load_build_module() -> ModuleType:
    path = REPO / "docker-images" / "build.py"
    spec = importlib.util.spec_from_file_location("gp_docker_images_build", path)
    if spec is None or spec.loader is None:
        raise BackendUnavailable(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SCALA_KERNEL_IMAGE = default_image("scala", DEFAULT_PREFIX)


def ensure_kernel_image(
    daemon: DockerDaemon, tag: str = KERNEL_IMAGE, image: str = "python"
) -> str:
    """Make sure a kernel image (``image``: a flavor of docker-images/build.py, the Python one
    by default) is in ``daemon`` (present, loaded, or built)."""
    build = _load_build_module()
    settings = build.BuildSettings(
        tag=tag,
        image=image,
        cache_dir=Path(os.getenv("GP_IMAGE_CACHE_DIR", str(CACHE_DIR / "docker-images"))),
        docker_host=daemon.base_url,
    )
    try:
        return str(build.ensure_image(settings))
    except build.BuildUnavailable as err:
        raise BackendUnavailable(f"the kernel image cannot be built here: {err}") from err


@dataclass
class DockerBackend:
    """The daemon (a Swarm manager too) and the kernel image the suites use."""

    daemon: DockerDaemon
    swarm: SingleNodeSwarm
    image: str
    image_outcome: str
    timings: dict[str, float]

    @property
    def base_url(self) -> str:
        return self.daemon.base_url

    def stop(self) -> None:
        self.swarm.leave()
        self.daemon.stop()


_shared: DockerBackend | None = None


def shared_docker_backend() -> DockerBackend:
    """The process's one daemon + Swarm + image, started on first use (stopped at exit)."""
    global _shared
    if _shared is None:
        timings: dict[str, float] = {}
        started = time.monotonic()
        daemon = DockerDaemon().start()
        timings["dockerd"] = time.monotonic() - started
        try:
            mark = time.monotonic()
            swarm = SingleNodeSwarm(daemon).init()
            timings["swarm"] = time.monotonic() - mark
            mark = time.monotonic()
            outcome = ensure_kernel_image(daemon)
            timings["image"] = time.monotonic() - mark
        except BaseException:
            SingleNodeSwarm(daemon).leave()
            daemon.stop()
            raise
        _shared = DockerBackend(daemon, swarm, KERNEL_IMAGE, outcome, timings)
        atexit.register(stop_shared_docker_backend)
    return _shared


def stop_shared_docker_backend() -> None:
    global _shared
    backend, _shared = _shared, None
    if backend is not None:
        with contextlib.suppress(ImportError):
            from gp_docker.docker_api import reset_clients
            from gp_docker.events import DockerEventsWatcher

            DockerEventsWatcher.stop_all()  # before the daemon goes: no reconnect attempts
            reset_clients()
        backend.stop()


DOCKER_KERNEL_NAME = "gp_docker_test"
SWARM_KERNEL_NAME = "gp_swarm_test"
LAUNCH_TIMEOUT = 90


@dataclass
class DockerKernelspecs:
    """Kernelspecs for both provisioners, installed with ``jupyter docker-spec install`` into
    a temporary JUPYTER_PATH entry, and the backend behind them."""

    backend: DockerBackend
    root: Path
    docker: str = DOCKER_KERNEL_NAME
    swarm: str = SWARM_KERNEL_NAME

    def install(self, name: str, *flags: str) -> Path:
        """Install one more spec (``--replace``); return its folder."""
        from gp_docker.cli import main as install_spec

        common = ["--launch-timeout", str(LAUNCH_TIMEOUT), "--image-name", self.backend.image]
        where = ["--prefix", str(self.root), "--kernel-name", name, "--replace"]
        install_spec(["install", *where, *common, *flags])
        return self.root / "share" / "jupyter" / "kernels" / name

    def rewrite(self, name: str, **changes: Any) -> None:
        """Change top-level fields of an installed spec's kernel.json (e.g. its argv)."""
        path = self.root / "share" / "jupyter" / "kernels" / name / "kernel.json"
        spec = json.loads(path.read_text())
        spec.update(changes)
        path.write_text(json.dumps(spec, indent=2))


@contextlib.contextmanager
def kernelspecs_installed(backend: DockerBackend, root: Path) -> Iterator[DockerKernelspecs]:
    """Install the two kernelspecs under ``root`` and set, for the block, the settings the
    docker suites run with: JUPYTER_PATH (prepended), the response manager on 127.0.0.1 (any
    free port), DOCKER_HOST of the private daemon."""
    specs = DockerKernelspecs(backend, root)
    specs.install(specs.docker)
    specs.install(specs.swarm, "--swarm")
    jupyter_path = str(root / "share" / "jupyter")
    settings = {
        "JUPYTER_PATH": os.pathsep.join(p for p in (jupyter_path, os.getenv("JUPYTER_PATH")) if p),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
        "DOCKER_HOST": backend.base_url,
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield specs
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bench(kernel_counts: list[int], seconds: float, interval: float) -> None:
    """Print the Docker API calls made while polling 1..N kernels of each provisioner."""
    import asyncio

    from gp_docker.stats import run_poll_bench

    backend = shared_docker_backend()
    with tempfile.TemporaryDirectory(prefix="gp-docker-bench-") as tmp:
        with kernelspecs_installed(backend, Path(tmp)) as specs:
            for kernel_name in (specs.docker, specs.swarm):
                windows = asyncio.run(run_poll_bench(kernel_name, kernel_counts, seconds, interval))
                for window in windows:
                    print(f"{kernel_name}: {window.summary()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``--build-image``: start the daemon, make sure the kernel image is there (build, load or
    nothing), stop.  ``--bench``: print the poll API call figures.  Neither: start and wait."""
    import argparse

    parser = argparse.ArgumentParser(description="a private dockerd + Swarm for gp-docker")
    parser.add_argument("--build-image", action="store_true", help="ensure the image, then stop")
    parser.add_argument("--bench", action="store_true", help="print poll API call figures")
    parser.add_argument("--kernels", default="1,20", help="kernel counts for --bench")
    parser.add_argument("--seconds", type=float, default=60.0, help="poll window for --bench")
    parser.add_argument("--interval", type=float, default=3.0, help="poll interval for --bench")
    parser.add_argument("--scala", action="store_true", help="also ensure the Scala image")
    args = parser.parse_args(argv)
    try:
        backend = shared_docker_backend()
    except BackendUnavailable as err:
        print(f"dockerd backend unavailable: {err}", file=sys.stderr)
        return 2
    try:
        print(f"image {backend.image}: {backend.image_outcome}; timings {backend.timings}")
        if args.scala:
            started = time.monotonic()
            outcome = ensure_kernel_image(backend.daemon, SCALA_KERNEL_IMAGE, image="scala")
            print(f"image {SCALA_KERNEL_IMAGE}: {outcome} in {time.monotonic() - started:.0f}s")
        if args.bench:
            counts = [int(n) for n in args.kernels.split(",") if n.strip()]
            bench(counts, args.seconds, args.interval)
        elif not args.build_image:
            print(f"export DOCKER_HOST={backend.base_url}")
            swarm = backend.swarm
            print(f"swarm on 127.0.0.1:{swarm.port}, docker_gwbridge {swarm.subnet}")
            with contextlib.suppress(KeyboardInterrupt, EOFError):
                input("Enter (or Ctrl-C) stops the daemon\n")
    finally:
        stop_shared_docker_backend()
    return 0


if __name__ == "__main__":
    sys.exit(main())
