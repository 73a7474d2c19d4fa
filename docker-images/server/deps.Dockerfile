# The server image's dependencies: Jupyter Server and what gp-provisioners-core, gp-k8s, gp-crd
# and gp-server need from PyPI (requirements.txt, written by build_server.py from their
# pyproject.toml files), plus hatchling to build our packages offline on top. Rebuilt only when
# that list, this file or the base changes, so a code change costs seconds, not a PyPI install.
#
# The build context's ca/ (extra CA certificates for networks that intercept TLS; possibly
# none) is seen by the `build` stage alone; the final stage copies the finished environment.

ARG BASE_IMAGE=gp/debian-python:bookworm

FROM ${BASE_IMAGE} AS build
LABEL gp.stage=build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY ca/ /usr/local/share/ca-certificates/
COPY requirements.txt /tmp/requirements.txt
RUN update-ca-certificates >/dev/null \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -q -r /tmp/requirements.txt \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
