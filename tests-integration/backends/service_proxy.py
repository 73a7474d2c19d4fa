"""Our stand-in for kube-proxy and cluster DNS in the gp-k8s test cluster.  NOT kube-proxy.

kube-proxy programs the host's iptables (or nftables/IPVS) so that a Service's ClusterIP
reaches the Service's ready pods, and CoreDNS answers ``<service>.<namespace>.svc`` with the
ClusterIP.  Neither may run here: the host's packet filter is not ours to change (the network
rule keeps every test on loopback), and no cluster DNS server is packaged for Debian.  So:

- the suite's apiserver allocates ClusterIPs from a LOOPBACK range (``127.96.N.0/24``, one N
  per cluster: :func:`service_cidr`), which the real apiserver accepts;
- this process watches the real API (Services and Pods, cluster-wide, listed every
  ``--interval`` seconds) and, for every Service with a selector and a loopback ClusterIP,
  listens on ``ClusterIP:port`` for each TCP port; a connection goes to one ready pod the
  selector picks (round robin; ``targetPort`` by number or by the container port's name),
  bytes copied both ways, as kube-proxy's old userspace mode did;
- names are the node agent's part: it gives each pod an ``/etc/hosts`` naming every Service
  (``name.namespace.svc.cluster.local``, ``name.namespace.svc``, ``name.namespace``, and
  ``name`` in the pod's own namespace), see :func:`hosts_lines`.

Run: ``python service_proxy.py --kubeconfig K [--interval 0.5]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import logging
import random
import signal
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("service-proxy")
CLUSTER_DOMAIN = "cluster.local"
CONNECT_TIMEOUT = 5.0
CHUNK = 65536


def service_cidr() -> str:
    """A loopback /24 for one test cluster's ClusterIPs: suites (and engineers' parallel
    runs) start several clusters on this host, each with its own proxy, so each takes a
    different third octet."""
    return f"127.96.{random.randrange(1, 255)}.0/24"


def hosts_lines(services: Iterable[Mapping[str, Any]], namespace: str) -> list[str]:
    """``/etc/hosts`` lines naming ``services`` (API objects) as cluster DNS would, for a pod
    in ``namespace``.  Called by the node agent when it starts a container."""
    lines = []
    for service in services:
        ip = (service.get("spec") or {}).get("clusterIP") or ""
        if not ip or ip == "None":
            continue
        meta = service["metadata"]
        name, ns = meta["name"], meta["namespace"]
        names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
        if ns == namespace:
            names.append(name)
        lines.append(f"{ip}\t{' '.join(names)}")
    return lines


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


class Listener(threading.Thread):
    """One ``ClusterIP:port`` of one Service."""

    def __init__(self, proxy: ServiceProxy, key: tuple[str, str, str, int]) -> None:
        super().__init__(daemon=True, name=f"listen-{key[2]}:{key[3]}")
        self.proxy, self.key = proxy, key
        self.sock = socket.create_server((key[2], key[3]), reuse_port=False)
        self.closed = False

    def run(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.forward, args=(client,), daemon=True).start()

    def forward(self, client: socket.socket) -> None:
        namespace, name, _, port = self.key
        target = self.proxy.endpoint(namespace, name, port)
        if target is None:
            log.warning("service %s/%s port %d: no ready endpoint", namespace, name, port)
            client.close()
            return
        try:
            upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT)
        except OSError as err:
            log.warning("service %s/%s port %d -> %s: %s", namespace, name, port, target, err)
            client.close()
            return
        upstream.settimeout(None)
        log.info(
            "service %s/%s port %d: connection forwarded to %s:%d", namespace, name, port, *target
        )
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _target_port(pod: Mapping[str, Any], target: Any) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


class ServiceProxy:
    """Keeps one :class:`Listener` per Service port and picks endpoints from the API."""

    def __init__(self, api: Any, interval: float) -> None:
        self.api, self.interval = api, interval
        self.listeners: dict[tuple[str, str, str, int], Listener] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.turn = itertools.count()
        self.stopped = threading.Event()

    def serialised(self, obj: Any) -> dict[str, Any]:
        """An API object as the JSON the apiserver sent (camelCase keys)."""
        data: dict[str, Any] = self.api.api_client.sanitize_for_serialization(obj)
        return data

    def sync(self) -> None:
        """List the Services; open listeners for new ports, close those of gone ones."""
        found = self.serialised(self.api.list_service_for_all_namespaces())["items"]
        wanted: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        services = {}
        for service in found:
            spec, meta = service["spec"], service["metadata"]
            ip = spec.get("clusterIP") or ""
            if not spec.get("selector") or not ip or ip == "None":
                continue
            if not ipaddress.ip_address(ip).is_loopback:
                continue  # never listen beyond loopback
            services[(meta["namespace"], meta["name"])] = service
            for port in spec.get("ports") or []:
                if (port.get("protocol") or "TCP") == "TCP":
                    wanted[(meta["namespace"], meta["name"], ip, int(port["port"]))] = port
        self.services = services
        for key in set(self.listeners) - set(wanted):
            self.listeners.pop(key).close()
            log.info("closed %s", key)
        for key in set(wanted) - set(self.listeners):
            try:
                listener = Listener(self, key)
            except OSError as err:
                log.warning("cannot listen for service %s/%s on %s:%d: %s", *key, err)
                continue
            self.listeners[key] = listener
            listener.start()
            log.info("listening for %s/%s on %s:%d", *key)

    def endpoint(self, namespace: str, name: str, port: int) -> tuple[str, int] | None:
        """A ready pod of the Service (round robin) and its target port."""
        service = self.services.get((namespace, name))
        if service is None:
            return None
        spec = service["spec"]
        selector = ",".join(f"{k}={v}" for k, v in sorted(spec["selector"].items()))
        pods = self.serialised(self.api.list_namespaced_pod(namespace, label_selector=selector))
        ready = [p for p in pods["items"] if _ready(p)]
        service_port = next(p for p in spec["ports"] if int(p["port"]) == port)
        target = service_port.get("targetPort") or port
        for offset in range(len(ready)):
            pod = ready[(next(self.turn) + offset) % len(ready)]
            number = _target_port(pod, target)
            if number is not None:
                return pod["status"]["podIP"], number
        return None

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.sync()
            except Exception as err:  # the apiserver restarts in some suites: keep going
                log.warning("listing services failed: %s", err)
            self.stopped.wait(self.interval)
        for listener in self.listeners.values():
            listener.close()


def main(argv: list[str] | None = None) -> None:
    from kubernetes import client
    from kubernetes import config as k8s_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    configuration = client.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=args.kubeconfig, client_configuration=configuration
    )
    proxy = ServiceProxy(client.CoreV1Api(client.ApiClient(configuration)), args.interval)
    signal.signal(signal.SIGTERM, lambda *_: proxy.stopped.set())
    signal.signal(signal.SIGINT, lambda *_: proxy.stopped.set())
    proxy.run()


if __name__ == "__main__":
    main()
