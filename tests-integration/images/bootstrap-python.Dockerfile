# A kernel image made the way the docs tell users to make theirs: a plain Debian + Python base
# (the suites' gp/debian-python, which has nothing of this project), a virtual environment with
# gp-provisioners-core and ipykernel, then `jupyter image-bootstrap install`.  The conformance
# suites run it with the kernelspec `jupyter docker-spec install` / `jupyter k8s-spec install
# --image-name <this image>` writes, unmodified.  Only difference from the docs' Dockerfile:
# gp-provisioners-core comes from a wheel of this checkout (the build context), and the extra
# CA certificates of this network are seen by the pip stage alone (build.py's convention).

ARG BASE_IMAGE=gp/debian-python:bookworm

FROM ${BASE_IMAGE} AS build
LABEL gp.stage=build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY ca/ /usr/local/share/ca-certificates/
COPY gp_provisioners_core-*.whl /tmp/wheels/
RUN update-ca-certificates >/dev/null \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -q /tmp/wheels/gp_provisioners_core-*.whl ipykernel

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN jupyter image-bootstrap install --languages=Python
RUN echo 'kernel:x:1000:100:kernel user:/home/kernel:/bin/sh' >> /etc/passwd \
    && mkdir -p /home/kernel && chown 1000:100 /home/kernel
ENV HOME=/home/kernel
USER 1000:100
