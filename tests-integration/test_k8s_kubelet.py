"""gp-k8s on a REAL, PATCHED kubelet node (in the default run; GP_K8S_REAL_KUBELET=0 leaves it out).

The real control plane of the other k8s suites, plus a kubelet built from the same Debian source
tree with its cloud credential providers removed and a loopback node IP allowed, over its own
containerd that resolves every registry to 127.0.0.1:1 (backends/kubelet_node.py).  Pods run with
the host network only.  What a real node shows and the node agent only emulates: pod deletion
that takes seconds, sandboxes, the image pull policy.  The whole run is traced: it fails if the
kubelet, containerd or any of their children sent anything outside 127.0.0.0/8.

The conformance suite runs here too (TestKubeletConformance); the loopback check's result goes
to the run's terminal summary (backends.ci_report), so it shows in the CI log.

What runs here: a kernel's start and now=True shutdown, the fail-fast cases a node decides
(missing image, unschedulable, crash, bad launcher path, a sandbox it cannot make) and the
conformance suite; after the module no containerd task may still run.  The node agent keeps
fault injection (slow teardown, stuck pods: test_k8s_failfast.py), the scale suite and the bench.

It needs containerd, runc, strace and containernetworking-plugins (scripts/bootstrap.sh), and
costs (measured on the shared 2-core machine, control plane binaries cached): about 8 min cold
(the kubelet build, ~4.5-5 min, then the suite) and 3-4 min warm.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from backends.ci_report import report
from backends.k8s_cluster import (
    K8sCluster,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
)
from backends.k8s_fixtures import K8sBackend
from backends.kubelet_node import (
    ENABLED,
    HOST_IMAGE,
    HOST_LATEST,
    KubeletNode,
    host_pod_template,
    join_node,
    leave,
    off_loopback,
)
from jupyter_client.manager import AsyncKernelManager

from gp_k8s.reaper import Reaper
from gp_provisioners_core.errors import LaunchFailedError
from gp_provisioners_core.testing import ProvisionerConformance, isolated_jupyter_paths

pytestmark = pytest.mark.skipif(not ENABLED, reason="left out: GP_K8S_REAL_KUBELET=0")
NAMESPACE = "gp-kubelet"
FAILS_WITHIN = 30.0
"""A generous bound for a launch that cannot succeed (its launch timeout is 120 s): passing
it proves the reason was seen, not waited out; the measured seconds go to the CI log."""
BAD_LAUNCHER = "/nonexistent/gp/launch_ipykernel.py"
CRASHER = """\
import sys
print("Traceback (most recent call last):")
print("ModuleNotFoundError: No module named 'fancy_kernel_dependency'")
sys.exit(3)
"""


@pytest.fixture(scope="module")
def real_node(
    k8s_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeletNode]:
    node = join_node(k8s_cluster, tmp_path_factory.mktemp("kubelet"))
    try:
        yield node
    finally:
        Reaper.shared().drain(90)
        running = running_tasks(node)
        deadline = time.monotonic() + 60
        while running and time.monotonic() < deadline:
            time.sleep(1)
            running = running_tasks(node)
        report(f"real kubelet: containerd tasks still running after the suite: {running}")
        destinations = leave(k8s_cluster, node)
        bad = off_loopback(destinations)
        seen = sorted(set(destinations))
        report(
            f"real kubelet loopback check: {len(destinations)} traced connections/sends by "
            f"kubelet and containerd to {len(seen)} addresses {seen[:20]}; "
            f"{len(bad)} outside 127.0.0.0/8 and ::1 {bad}" + (" - all loopback" if not bad else "")
        )
        assert bad == [], f"traffic left loopback: {bad}"
        assert running == [], f"containerd tasks left running by the suite's kernels: {running}"


def running_tasks(node: KubeletNode) -> list[str]:
    """The node's containerd tasks that still run (a deleted pod's sandbox and containers
    are stopped by the kubelet; only their records wait for garbage collection)."""
    lines = node.ctr("tasks", "ls").splitlines()[1:]
    return [line for line in lines if "RUNNING" in line.split()]


@pytest.fixture(scope="module")
def kubelet_specs(
    k8s_cluster: K8sCluster, real_node: KubeletNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    ensure_namespace(k8s_cluster.api_client(), NAMESPACE)
    root = tmp_path_factory.mktemp("jupyter-kubelet")
    checkout = str(Path(__file__).resolve().parents[1])
    # the host's Python as the kernel's: /usr, its installation, this venv, this checkout and
    # the test's Jupyter paths, at the same paths inside the container
    python_home = str(Path(sys.base_prefix).resolve())
    mounts = ["/usr", python_home, checkout, str(Path(sys.prefix).resolve()), str(root)]
    template = root / "host-python.yaml"
    home = root / "home"
    home.mkdir()
    template.write_text(yaml.safe_dump(host_pod_template(sorted(set(mounts)), str(home))))
    # The same pod without the host network: the loopback-only CNI cannot give its sandbox a
    # network, and the kubelet says so only in FailedCreatePodSandBox events.
    pod_network = root / "pod-network.yaml"
    no_host_network = host_pod_template(sorted(set(mounts)), str(home))
    no_host_network["spec"]["hostNetwork"] = False
    pod_network.write_text(yaml.safe_dump(no_host_network))
    crasher = root / "crasher.py"
    crasher.write_text(CRASHER)
    common = ["--namespace", NAMESPACE, "--launch-timeout", "120", "--image-name", HOST_LATEST]
    with isolated_jupyter_paths(root) as prefix:
        for name, extra in (
            ("crash", ["--image-launcher", str(crasher), "--pod-template", str(template)]),
            ("badpath", ["--image-launcher", BAD_LAUNCHER, "--pod-template", str(template)]),
            ("pod_network", ["--pod-template", str(pod_network)]),
        ):
            install_kernelspec(prefix, f"gp_k8s_kubelet_{name}", *common, *extra)
        yield install_kernelspec(
            prefix,
            "gp_k8s_kubelet",
            *common,
            "--allowed-images",
            f"{HOST_IMAGE},gp-test/not-on-the-node:1",
            "--max-cpus",
            "64",
            "--pod-template",
            str(template),
        )


@pytest.fixture
def admin_kubeconfig(k8s_cluster: K8sCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(k8s_cluster.admin_kubeconfig))


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_a_kernel_runs_and_stops_without_waiting_for_the_kubelet(
    k8s_cluster: K8sCluster, kubelet_specs: str
) -> None:
    # The image is tagged :latest and only on the node: with the API's default policy
    # (Always) the kubelet would try the registry; IfNotPresent runs it.
    manager = AsyncKernelManager(kernel_name=kubelet_specs)
    started = time.monotonic()
    await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="kubelet"))
    report(f"real kubelet: kernel ready in {time.monotonic() - started:.1f}s")
    client = manager.client()
    client.start_channels()
    try:
        await asyncio.wait_for(client.wait_for_ready(timeout=60), 70)
    finally:
        client.stop_channels()
    kernel_id = str(manager.kernel_id)
    started = time.monotonic()
    await manager.shutdown_kernel(now=True)
    stopped = time.monotonic() - started
    still = kernel_objects(k8s_cluster.api_client(), kernel_id)
    assert await Reaper.shared().settled(kernel_id, 120)
    gone = time.monotonic() - started
    report(
        f"real kubelet: shutdown(now=True) returned in {stopped:.1f}s, pod gone after "
        f"{gone:.1f}s (left when it returned: {still})"
    )
    assert kernel_objects(k8s_cluster.api_client(), kernel_id) == []


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_a_missing_image_fails_fast(k8s_cluster: K8sCluster, kubelet_specs: str) -> None:
    manager = AsyncKernelManager(kernel_name=kubelet_specs)
    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failed:
        await manager.start_kernel(
            env=dict(
                os.environ, KERNEL_USERNAME="kubelet", KERNEL_IMAGE="gp-test/not-on-the-node:1"
            )
        )
    seconds = time.monotonic() - started
    report(f"real kubelet: missing image failed in {seconds:.1f}s: {failed.value}")
    assert seconds < FAILS_WITHIN
    assert "ErrImagePull" in str(failed.value) or "ImagePullBackOff" in str(failed.value)
    assert await Reaper.shared().settled(str(manager.kernel_id), 120)


@pytest.mark.usefixtures("admin_kubeconfig")
async def test_a_sandbox_the_node_cannot_make_fails_fast(
    k8s_cluster: K8sCluster, kubelet_specs: str
) -> None:
    manager = AsyncKernelManager(kernel_name="gp_k8s_kubelet_pod_network")
    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failed:
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="kubelet"))
    seconds = time.monotonic() - started
    report(f"real kubelet: sandbox failure reported in {seconds:.1f}s: {failed.value}")
    assert seconds < FAILS_WITHIN  # the launch timeout is 120 s
    assert "FailedCreatePodSandBox" in str(failed.value)
    assert await Reaper.shared().settled(str(manager.kernel_id), 120)


@pytest.mark.usefixtures("admin_kubeconfig")
@pytest.mark.parametrize(
    ("case", "kernel_name", "env", "reasons"),
    [
        (
            "unschedulable",
            "gp_k8s_kubelet",
            {"KERNEL_CPUS": "32"},
            ("Unschedulable", "Insufficient cpu"),
        ),
        (
            "crash",
            "gp_k8s_kubelet_crash",
            {},
            ("exited with code 3", "No module named 'fancy_kernel_dependency'"),
        ),
        ("bad launcher path", "gp_k8s_kubelet_badpath", {}, ("exited with code 2", BAD_LAUNCHER)),
    ],
)
async def test_a_pod_that_cannot_run_fails_fast_with_the_node_s_reason(
    k8s_cluster: K8sCluster,
    kubelet_specs: str,
    case: str,
    kernel_name: str,
    env: dict[str, str],
    reasons: tuple[str, ...],
) -> None:
    manager = AsyncKernelManager(kernel_name=kernel_name)
    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failed:
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="kubelet", **env))
    seconds = time.monotonic() - started
    report(f"real kubelet: {case} failed in {seconds:.1f}s: {failed.value}")
    assert seconds < FAILS_WITHIN
    for reason in reasons:
        assert reason in str(failed.value)
    kernel_id = str(manager.kernel_id)
    assert await Reaper.shared().settled(kernel_id, 120), Reaper.shared().pending(kernel_id)
    assert kernel_objects(k8s_cluster.api_client(), kernel_id) == []


class TestKubeletConformance(ProvisionerConformance):
    """The conformance suite on the real kubelet (kernels in one shared namespace, the
    host-Python pod template, as cluster admin).  The leftovers check counts a reported PID
    only when it is one of the kernel's processes on this host: the launcher reports PIDs of
    the container's namespace here."""

    @pytest.fixture
    def conformance_backend(
        self,
        k8s_cluster: K8sCluster,
        kubelet_specs: str,
        admin_kubeconfig: None,
    ) -> K8sBackend:
        return K8sBackend(kernel_name=kubelet_specs, launch_timeout=120, cluster=k8s_cluster)
