# The Scala (Apache Toree) kernel image's dependencies: Debian's OpenJDK 17 runtime (headless,
# without recommends), Spark 3.5 from the pyspark wheel (its jars and bin/spark-submit, as
# SPARK_HOME=/opt/spark) and the Toree 0.5.0 assembly (Spark 3 / Scala 2.12) from the
# apache-toree package, and a non-root user.  Built by docker-images/build.py --image scala
# (legacy builder, `--network host`) and rebuilt only when this file or the base changes;
# Dockerfile adds the launcher on top.
#
# As in python/deps.Dockerfile, the build context's ca/ (extra CA certificates, possibly none)
# is seen by the `build` stage alone (pip); the final stage copies Spark and Toree only.

ARG BASE_IMAGE=gp/debian-python:bookworm

FROM ${BASE_IMAGE} AS build
LABEL gp.stage=build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY ca/ /usr/local/share/ca-certificates/
ARG PIP_PACKAGES="pyspark==3.5.7 apache-toree==0.5.0"
RUN update-ca-certificates >/dev/null \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -q --no-deps ${PIP_PACKAGES} \
    && site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && mkdir -p /opt/spark /opt/toree/lib \
    && cp -a "$site/pyspark/bin" "$site/pyspark/jars" /opt/spark/ \
    && cp "$site"/toree/lib/toree-assembly-*.jar /opt/toree/lib/ \
    && rm -f /opt/spark/bin/*.cmd

FROM ${BASE_IMAGE}
# The base's dpkg configuration already leaves out man pages, docs and locales.
RUN apt-get update -qq \
    && mkdir -p /usr/share/man/man1 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        openjdk-17-jre-headless >/dev/null \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /opt/spark /opt/spark
COPY --from=build /opt/toree /opt/toree
# A non-root default user (uid 1000, gid 100 "users"); the provisioner may run the kernel as
# another uid/gid from KERNEL_UID / KERNEL_GID.
RUN echo 'jovyan:x:1000:100:Jupyter kernel user:/home/jovyan:/bin/sh' >> /etc/passwd \
    && mkdir -p /home/jovyan && chown 1000:100 /home/jovyan
ENV SPARK_HOME=/opt/spark \
    GP_TOREE_JAR=/opt/toree/lib/toree-assembly-0.5.0-incubating.jar \
    LANG=C.UTF-8 \
    HOME=/home/jovyan
