"""Start and stop a real PostgreSQL streaming replica of a local primary, for tests and bench/.

    python scripts/pg_replica.py start [--port 5433] [--dir var/replica]
    python scripts/pg_replica.py stop  [--dir var/replica]

The replica is a second cluster made with Debian's PostgreSQL binaries: `pg_basebackup -R`
copies the primary (127.0.0.1:5432 by default) and writes the standby settings, then `pg_ctl`
starts it on its own port as an unprivileged user (PostgreSQL refuses to run as root: when this
runs as root, the cluster runs as `postgres`). `stop` shuts it down and removes its folder, so a
test that calls it in a `finally` leaves nothing behind.

The primary must accept replication connections from 127.0.0.1. When it does not and this runs
as root, `start` adds one `host replication all 127.0.0.1/32 trust` line to the primary's
pg_hba.conf (found with `SHOW hba_file`) and reloads it; otherwise it says what to add.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPLICATION_RULE = "host replication all 127.0.0.1/32 trust"
PRIMARY = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}


class ReplicaError(RuntimeError):
    """The replica could not be made or started; the message says which step and why."""


def pg_bindir() -> Path:
    """Debian's binaries of the newest installed PostgreSQL (pg_basebackup, pg_ctl)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        raise ReplicaError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return versions[-1].parent


def _psql(sql: str, *, port: str = PRIMARY["port"], database: str = "postgres") -> str:
    command = ["psql", "-h", PRIMARY["host"], "-p", port, "-U", PRIMARY["user"], "-d", database]
    result = subprocess.run(
        [*command, "-Atc", sql], capture_output=True, text=True, check=False, timeout=30
    )
    if result.returncode != 0:
        raise ReplicaError(f"psql on port {port}: {result.stderr.strip()}")
    return result.stdout.strip()


def allow_replication() -> None:
    """Make sure the primary accepts replication connections from 127.0.0.1 (see module doc)."""
    hba = Path(_psql("SHOW hba_file"))
    rules = [line.split() for line in hba.read_text().splitlines() if line.strip()]
    if any(rule[:2] == ["host", "replication"] for rule in rules if not rule[0].startswith("#")):
        return
    if os.geteuid() != 0:
        raise ReplicaError(f"the primary refuses replication: add '{REPLICATION_RULE}' to {hba}")
    with hba.open("a") as handle:
        handle.write("\n# Added by scripts/pg_replica.py for local replica tests\n")
        handle.write(REPLICATION_RULE + "\n")
    _psql("SELECT pg_reload_conf()")


def _as_cluster_owner(command: list[str]) -> list[str]:
    """Run PostgreSQL's tools as `postgres` when we are root (the server refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class Replica:
    """One streaming replica on `port`, its data in `directory` (removed by `stop`)."""

    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/"

    def start(self, *, wait_seconds: float = 60) -> Replica:
        if self.directory.exists():
            self.stop()
        allow_replication()
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        bindir = pg_bindir()
        self._run(
            [
                str(bindir / "pg_basebackup"),
                *("-h", PRIMARY["host"], "-p", PRIMARY["port"], "-U", PRIMARY["user"]),
                *("-D", str(self.directory), "-R", "-X", "stream", "--checkpoint=fast"),
            ],
            "pg_basebackup",
        )
        self._write_config()
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._run(
            [
                str(bindir / "pg_ctl"),
                *("-D", str(self.directory), "-o", options),
                *("-l", str(self.directory / "server.log"), "-w", "start"),
            ],
            "pg_ctl start",
        )
        self._wait_until_ready(wait_seconds)
        return self

    def _write_config(self) -> None:
        """Debian keeps a cluster's configuration in /etc, so the copy has none: give it its own."""
        files = {
            "postgresql.conf": "hot_standby = on\nmax_connections = 100\n",
            "pg_hba.conf": "local all all trust\nhost all all 127.0.0.1/32 trust\n",
            "pg_ident.conf": "",
        }
        for name, text in files.items():
            path = self.directory / name
            path.write_text(text)
            if os.geteuid() == 0:
                owner = pwd.getpwnam("postgres")
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def stop(self) -> None:
        """Shut the replica down (fast mode) and remove its folder; safe to call twice."""
        if (self.directory / "postmaster.pid").exists():
            command = [str(pg_bindir() / "pg_ctl"), "-D", str(self.directory), "-m", "fast"]
            subprocess.run(
                _as_cluster_owner([*command, "-w", "stop"]),
                capture_output=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(self.directory, ignore_errors=True)

    def sql(self, sql: str, *, database: str = "postgres") -> str:
        return _psql(sql, port=str(self.port), database=database)

    def _run(self, command: list[str], step: str) -> None:
        result = subprocess.run(
            _as_cluster_owner(command), capture_output=True, text=True, check=False, timeout=300
        )
        if result.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ReplicaError(f"{step} failed: {result.stderr.strip()} {tail}".strip())

    def _wait_until_ready(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if self.sql("SELECT pg_is_in_recovery()") == "t":
                    return
            except ReplicaError:
                pass
            time.sleep(0.2)
        raise ReplicaError(f"the replica on port {self.port} did not accept connections")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=5433)
    parser.add_argument("--dir", type=Path, default=Path("var/replica"))
    args = parser.parse_args(argv)
    replica = Replica(port=args.port, directory=args.dir.resolve())
    try:
        if args.action == "start":
            replica.start()
            print(f"replica of 127.0.0.1:5432 running: {replica.url}")
        else:
            replica.stop()
            print(f"replica in {replica.directory} stopped and removed")
    except ReplicaError as error:
        print(f"pg_replica: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
