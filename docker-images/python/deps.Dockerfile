# The Python kernel image's dependencies: a virtual environment with ipykernel, cryptography
# and matplotlib (notebooks plot; the end-to-end notebook test draws one) on the local Debian
# base, and a non-root user.  Built by docker-images/build.py (legacy
# builder, `--network host`) and rebuilt only when this file or the base changes; Dockerfile
# adds the launchers on top.
#
# The build context holds ca/: the extra CA certificates the operator hands in for networks
# that intercept TLS (possibly none).  Only the `build` stage sees them; the final stage copies
# the finished virtual environment alone, so no certificate of the build machine lands in the
# image, and build.py prunes the build stage's image once the build is done.

ARG BASE_IMAGE=gp/debian-python:bookworm

FROM ${BASE_IMAGE} AS build
LABEL gp.stage=build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY ca/ /usr/local/share/ca-certificates/
ARG PIP_PACKAGES="ipykernel>=6.29 cryptography>=42 matplotlib>=3.8"
RUN update-ca-certificates >/dev/null \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -q ${PIP_PACKAGES} \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
# A non-root default user (uid 1000, gid 100 "users"); the provisioner may run the kernel as
# another uid/gid from KERNEL_UID / KERNEL_GID.
RUN echo 'jovyan:x:1000:100:Jupyter kernel user:/home/jovyan:/bin/sh' >> /etc/passwd \
    && mkdir -p /home/jovyan && chown 1000:100 /home/jovyan
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/jovyan
