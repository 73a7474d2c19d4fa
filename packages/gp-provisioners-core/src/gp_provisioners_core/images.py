"""The kernel images this project builds and publishes: one place for their names and tags.

Every installer's default image (``jupyter docker-spec``, ``k8s-spec``, ``crd-spec``) comes
from :func:`default_image`, and ``docker-images/build.py`` tags what it builds with the same
function, so a default always names an image the repository builds (a test checks both
sides).  A name is ``<prefix>/<repository>:<tag>``:

- the prefix is the registry and namespace the publishing workflow pushes to
  (:data:`DEFAULT_PREFIX`); an operator who mirrors the images elsewhere sets
  ``GP_IMAGE_PREFIX`` when installing kernelspecs (or gives ``--image-name``);
- the tag is :data:`IMAGE_TAG`, the release of the images this version of the package
  expects (their launchers speak its launch protocol).  It is never ``latest``: with a fixed
  tag Kubernetes' ``IfNotPresent`` policy uses the image a node already holds.

Standard library only, with no import from the rest of the package besides ``_version``:
``docker-images/build.py`` loads this file from the source tree without installing anything.
"""

from __future__ import annotations

import os

from ._version import __version__

DEFAULT_PREFIX = "ghcr.io/gateway-provisioners"
PREFIX_ENV = "GP_IMAGE_PREFIX"
IMAGE_TAG = __version__
"""The images are released with gp-provisioners-core, whose wheel carries their launchers."""

# kind -> repository under the prefix.  "scala" is reserved for the Apache Toree image.
REPOSITORIES = {
    "python": "kernel-py",
    "r": "kernel-r",
    "spark-python": "kernel-spark-py",
    "scala": "kernel-scala",
}


def image_prefix() -> str:
    """The registry/namespace of the default images: ``$GP_IMAGE_PREFIX`` or
    :data:`DEFAULT_PREFIX`, without a trailing slash."""
    # image references are lower case (a GitHub owner may not be)
    prefix = os.environ.get(PREFIX_ENV, "").strip().rstrip("/").lower()
    return prefix or DEFAULT_PREFIX


def default_image(kind: str, prefix: str | None = None, tag: str = IMAGE_TAG) -> str:
    """The reference of the project's ``kind`` image (a key of :data:`REPOSITORIES`).

    Called by the installers for their defaults and by ``docker-images/build.py`` for its
    tags.  Raises ``ValueError`` naming the kind and the known kinds for anything else.
    """
    try:
        repository = REPOSITORIES[kind]
    except KeyError:
        raise ValueError(
            f"no kernel image of kind {kind!r}: one of {', '.join(REPOSITORIES)}"
        ) from None
    if not tag or tag == "latest":
        raise ValueError(f"image tag {tag!r}: give a version (default images never use latest)")
    return f"{prefix if prefix is not None else image_prefix()}/{repository}:{tag}"
