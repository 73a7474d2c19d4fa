"""The YARN provisioner's settings: traitlets with ``GP_*`` environment defaults.

Configurable as ``YarnProvisioner.<name>`` in Jupyter Server's config, or per kernelspec in
``metadata.kernel_provisioner.config`` (checked by gp-provisioners-core's
``apply_kernelspec_overrides``).
Environment defaults are read when a provisioner is made, never at import time; booleans are
parsed by gp-provisioners-core's ``env_bool`` (``"false"`` is false; an unknown word is an error).
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, Float, List, Set, Unicode, default, validate
from traitlets.config import Configurable

from gp_provisioners_core.config import env_bool, env_float, env_set

from .endpoints import normalize_endpoint
from .spark_options import SparkOptionLimits


class YarnConfigMixin(Configurable):
    """The settings of ``YarnProvisioner`` besides gp-provisioners-core's."""

    yarn_endpoint = Unicode(
        config=True,
        help="""The ResourceManager's web address, http(s)://host:port (GP_YARN_ENDPOINT).
        Empty: the ResourceManager(s) of yarn-site.xml under YARN_CONF_DIR / HADOOP_CONF_DIR,
        HA rm-ids included.""",
    )

    @default("yarn_endpoint")
    def _yarn_endpoint_default(self) -> str:
        return os.getenv("GP_YARN_ENDPOINT", "")

    alt_yarn_endpoint = Unicode(
        config=True,
        help="""The other ResourceManager of an HA pair (GP_ALT_YARN_ENDPOINT); used with
        yarn_endpoint.  Whichever reports haState ACTIVE is used, and the other is found again
        when the active one goes away.""",
    )

    @default("alt_yarn_endpoint")
    def _alt_yarn_endpoint_default(self) -> str:
        return os.getenv("GP_ALT_YARN_ENDPOINT", "")

    @validate("yarn_endpoint", "alt_yarn_endpoint")
    def _validate_endpoint(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip()
        if value:
            normalize_endpoint(value)  # raises naming the value
        return value

    yarn_endpoint_security_enabled = Bool(
        config=True,
        help="""Authenticate to the ResourceManager with SPNEGO/Kerberos
        (GP_YARN_ENDPOINT_SECURITY_ENABLED, default false); needs the kerberos extra
        (pip install 'gp-yarn[kerberos]') and a Kerberos ticket for the server's user.""",
    )

    @default("yarn_endpoint_security_enabled")
    def _security_default(self) -> bool:
        return env_bool("GP_YARN_ENDPOINT_SECURITY_ENABLED", False)

    impersonation_enabled = Bool(
        config=True,
        help="""Submit each kernel as its KERNEL_USERNAME (spark-submit --proxy-user), after
        the user passed authorized_users / unauthorized_users (GP_IMPERSONATION_ENABLED,
        default false).  The server's user must be allowed to impersonate in Hadoop.""",
    )

    @default("impersonation_enabled")
    def _impersonation_default(self) -> bool:
        return env_bool("GP_IMPERSONATION_ENABLED", False)

    yarn_cert_bundle = Unicode(
        config=True,
        help="""A CA bundle to verify an https ResourceManager with (GP_YARN_CERT_BUNDLE);
        empty uses the system's.""",
    )

    @default("yarn_cert_bundle")
    def _yarn_cert_bundle_default(self) -> str:
        return os.getenv("GP_YARN_CERT_BUNDLE", "")

    yarn_request_timeout = Float(
        config=True,
        help="Seconds one ResourceManager request may take (GP_YARN_REQUEST_TIMEOUT, 10).",
    )

    @default("yarn_request_timeout")
    def _yarn_request_timeout_default(self) -> float:
        return env_float("GP_YARN_REQUEST_TIMEOUT", 10.0)

    yarn_status_interval = Float(
        config=True,
        help="""Seconds between the applications queries that serve every kernel of this
        server (GP_YARN_STATUS_INTERVAL, 3); 0.25 s while a kernel starts or stops.""",
    )

    @default("yarn_status_interval")
    def _yarn_status_interval_default(self) -> float:
        return env_float("GP_YARN_STATUS_INTERVAL", 3.0)

    yarn_application_types = List(
        Unicode(),
        config=True,
        help="""The application types the applications query asks for
        (GP_YARN_APPLICATION_TYPES, comma-separated, default SPARK); empty asks for all.""",
    )

    @default("yarn_application_types")
    def _yarn_application_types_default(self) -> list[str]:
        raw = os.getenv("GP_YARN_APPLICATION_TYPES", "SPARK")
        return [item.strip() for item in raw.split(",") if item.strip()]

    yarn_accepted_report_after = Float(
        config=True,
        help="""Seconds an application may wait in ACCEPTED (for resources in its queue)
        before its queue and the ResourceManager's reason are logged
        (GP_YARN_ACCEPTED_REPORT_AFTER, 5).""",
    )

    @default("yarn_accepted_report_after")
    def _yarn_accepted_report_after_default(self) -> float:
        return env_float("GP_YARN_ACCEPTED_REPORT_AFTER", 5.0)

    yarn_queue = Unicode(
        config=True,
        help="""The YARN queue of kernels without KERNEL_YARN_QUEUE (GP_YARN_QUEUE; empty:
        spark-submit's own, --queue of the kernelspec's SPARK_OPTS or YARN's default).""",
    )

    @default("yarn_queue")
    def _yarn_queue_default(self) -> str:
        return os.getenv("GP_YARN_QUEUE", "")

    allowed_yarn_queues = Set(
        Unicode(),
        config=True,
        help="Queues KERNEL_YARN_QUEUE may name besides yarn_queue (GP_ALLOWED_YARN_QUEUES).",
    )

    @default("allowed_yarn_queues")
    def _allowed_yarn_queues_default(self) -> set[str]:
        return env_set("GP_ALLOWED_YARN_QUEUES", "")

    allowed_spark_conf = List(
        Unicode(),
        config=True,
        help="""Spark properties KERNEL_EXTRA_SPARK_OPTS may set with --conf, as fnmatch
        patterns (GP_ALLOWED_SPARK_CONF, comma-separated, e.g. spark.executor.*; default none).""",
    )

    @default("allowed_spark_conf")
    def _allowed_spark_conf_default(self) -> list[str]:
        return sorted(env_set("GP_ALLOWED_SPARK_CONF", ""))

    allowed_spark_flags = Set(
        Unicode(),
        config=True,
        help="""spark-submit options KERNEL_EXTRA_SPARK_OPTS may pass with a value
        (GP_ALLOWED_SPARK_FLAGS, e.g. --executor-memory,--num-executors; default none).""",
    )

    @default("allowed_spark_flags")
    def _allowed_spark_flags_default(self) -> set[str]:
        return env_set("GP_ALLOWED_SPARK_FLAGS", "")

    def spark_option_limits(self) -> SparkOptionLimits:
        """The queue and Spark option allow-lists as plain data."""
        return SparkOptionLimits(
            queue=self.yarn_queue,
            allowed_queues=frozenset(self.allowed_yarn_queues),
            allowed_conf=tuple(self.allowed_spark_conf),
            allowed_flags=frozenset(self.allowed_spark_flags),
        )
