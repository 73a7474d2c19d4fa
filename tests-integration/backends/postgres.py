"""A private PostgreSQL server on 127.0.0.1 for the gp-server replica suites.

Debian's ``postgresql`` package (the ``postgres`` part of scripts/system-packages.txt) provides
``initdb`` and ``pg_ctl`` under /usr/lib/postgresql/<major>/bin; the cluster lives in a temporary
directory, trusts loopback connections and is stopped (``pg_ctl stop -m immediate``) at the end.
When this process runs as root the server runs as the ``postgres`` user (PostgreSQL refuses
root).

    python tests-integration/backends/postgres.py    # start one, print its URL, stop on Enter
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    from backends.system_packages import missing_packages_message
except ImportError:  # run as a script
    from system_packages import missing_packages_message  # type: ignore[no-redef,import-not-found]

DATABASE = "gp_kernels"
USER = "gp"


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb, or None."""
    root = Path("/usr/lib/postgresql")
    found = sorted(root.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name), reverse=True)
    return found[0].parent if found else None


def why_not_available() -> str:
    """'' when a private PostgreSQL can start here, else why not (and what to install)."""
    missing = missing_packages_message("postgres")
    if missing:
        return missing
    if postgres_bin() is None:
        return "the postgresql package is installed but /usr/lib/postgresql/*/bin/initdb is not"
    return ""


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    bin_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(argv: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, cwd=workdir, capture_output=True, text=True, check=False)


def _checked(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster with database ``gp_kernels`` owned by user ``gp`` (trust auth
    on 127.0.0.1 only), stopped and deleted on exit."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError(why_not_available())
    workdir = Path(tempfile.mkdtemp(prefix="gp-postgres-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    server = PostgresServer(data, port, bin_dir)
    try:
        _checked(
            _as_postgres(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ],
                workdir,
            ),
            "initdb",
        )
        options = f"-h 127.0.0.1 -p {port} -k {workdir} -c fsync=off"
        _checked(
            _as_postgres(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(workdir / "postgres.log"),
                    "-w",
                    "start",
                ],
                workdir,
            ),
            "pg_ctl start",
        )
        _checked(
            _as_postgres(
                [
                    str(bin_dir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    USER,
                    DATABASE,
                ],
                workdir,
            ),
            "createdb",
        )
        yield server
    finally:
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    with running_postgres() as started:
        print(started.url)
        input("PostgreSQL runs; press Enter to stop it. ")
