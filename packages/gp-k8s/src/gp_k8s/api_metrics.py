"""Bounded labels for the Kubernetes API requests counted in ``gp_backend_api_requests_total``.

Called by ``CountingApiClient.call_api`` (every request of gp-k8s and gp-crd) and the watch
threads of :class:`~gp_k8s.watch_cache.WatchCache`.  A label names the verb and the resource
kind, never a namespace or an object name (those hold kernel ids and user names).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

BACKEND = "k8s"


def api_operation(method: str, url: str) -> str:
    """``GET /api/v1/namespaces/ns/pods/p/log`` -> ``GET pods/log``; a watch is ``WATCH pods``.

    After ``/api/<version>`` or ``/apis/<group>/<version>`` a path alternates kinds and names
    (``namespaces/<ns>/pods/<name>/<subresource>``): the kinds are kept, the names dropped, and
    ``namespaces`` only when it is the object itself.
    """
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"]:
        segments = segments[2:]
    elif segments[:1] == ["apis"]:
        segments = segments[3:]
    kinds = segments[0::2]
    if len(kinds) > 1 and kinds[0] == "namespaces":
        kinds = kinds[1:]
    watching = parse_qs(parts.query).get("watch", [""])[0].lower() in ("1", "true")
    verb = "WATCH" if watching else method.upper()
    return f"{verb} {'/'.join(kinds) or '/'}"
