# The Spark-Python kernel image's dependencies: Debian's Java 17 runtime
# (openjdk-17-jre-headless, without recommends, from the base's apt sources) and a virtual
# environment with PySpark 3.5 (its wheel carries Spark's jars: it is most of the image),
# ipykernel and cryptography, on the local Debian base; a non-root user.  SPARK_HOME is the
# pyspark package (bin/spark-submit, jars/), which is where `--spark` kernelspecs point
# (/opt/spark).  Built by docker-images/build.py --image spark-python (legacy builder,
# `--network host`); rebuilt only when this file or the base changes; Dockerfile adds the
# launchers on top.
#
# As in python/deps.Dockerfile, the build context's ca/ (extra CA certificates, possibly none)
# is seen by the `build` stage alone (pip); the final stage copies the virtual environment only.

ARG BASE_IMAGE=gp/debian-python:bookworm

FROM ${BASE_IMAGE} AS build
LABEL gp.stage=build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY ca/ /usr/local/share/ca-certificates/
# Spark 3.5 runs on Java 8, 11 and 17 and Python 3.8-3.12 (bookworm: Java 17, Python 3.11).
ARG PIP_PACKAGES="pyspark==3.5.5 ipykernel>=6.29 cryptography>=42"
RUN update-ca-certificates >/dev/null \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -q ${PIP_PACKAGES} \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
# The base's dpkg filters drop man pages; the JRE's update-alternatives still wants the folder.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        openjdk-17-jre-headless >/dev/null \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /opt/venv /opt/venv
# SPARK_HOME: the pyspark package (a link: COPY would copy the whole tree a second time).
RUN ln -s "$(/opt/venv/bin/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" /opt/spark
# A non-root default user (uid 1000, gid 100 "users"); the provisioner may run the kernel as
# another uid/gid from KERNEL_UID / KERNEL_GID.
RUN echo 'jovyan:x:1000:100:Jupyter kernel user:/home/jovyan:/bin/sh' >> /etc/passwd \
    && mkdir -p /home/jovyan && chown 1000:100 /home/jovyan
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SPARK_HOME=/opt/spark \
    HOME=/home/jovyan
