# The R kernel image's dependencies: Debian's R and IRkernel (r-base-core, r-cran-irkernel,
# without recommends) installed with apt from the base's own apt sources, a virtual environment
# with cryptography for the Python launcher (it does the launch protocol for R kernels and runs
# IRkernel through launch_IRkernel.R), and a non-root user.  Built by docker-images/build.py
# (legacy builder, `--network host`) and rebuilt only when this file or the base changes;
# Dockerfile adds the launchers on top.
#
# As in python/deps.Dockerfile, the build context's ca/ (extra CA certificates, possibly none)
# is seen by the `build` stage alone (pip); the final stage copies the virtual environment only.

ARG BASE_IMAGE=gp/debian-python:bookworm

FROM ${BASE_IMAGE} AS build
LABEL gp.stage=build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY ca/ /usr/local/share/ca-certificates/
ARG PIP_PACKAGES="cryptography>=42"
RUN update-ca-certificates >/dev/null \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -q ${PIP_PACKAGES} \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
# The base's dpkg configuration already leaves out man pages, docs and locales.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        r-base-core r-cran-irkernel >/dev/null \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /opt/venv /opt/venv
# A non-root default user (uid 1000, gid 100 "users"); the provisioner may run the kernel as
# another uid/gid from KERNEL_UID / KERNEL_GID.
RUN echo 'jovyan:x:1000:100:Jupyter kernel user:/home/jovyan:/bin/sh' >> /etc/passwd \
    && mkdir -p /home/jovyan && chown 1000:100 /home/jovyan
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    HOME=/home/jovyan
