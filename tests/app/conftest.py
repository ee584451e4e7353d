"""A throwaway PostgreSQL server for the records tests (Debian's binaries, loopback only)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Debian's layout; this machine has 15, a newer Debian release installs a newer major version.
POSTGRES_BINS = sorted(
    Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name)
)
POSTGRES_BIN = POSTGRES_BINS[-1] if POSTGRES_BINS else Path("/usr/lib/postgresql/15/bin")


class PostgresServer:
    """initdb + pg_ctl in a temporary folder; PostgreSQL refuses to run as root, so as root
    the cluster belongs to `nobody`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="leukolens-pg-"))
        self.data = self.folder / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            self.folder.chmod(0o755)
            shutil.chown(self.folder, "nobody")
        self._run(POSTGRES_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust")

    def _run(self, *command: object) -> None:
        subprocess.run(
            [*self.as_user, *map(str, command)], check=True, capture_output=True, timeout=120
        )

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        log = self.folder / "server.log"
        self._run(POSTGRES_BIN / "pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run(POSTGRES_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"leukolens_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if not (POSTGRES_BIN / "initdb").exists():
        pytest.fail("PostgreSQL is missing: apt-get install -y postgresql (.ci/run does)")
    server = PostgresServer()
    server.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", server.port)) == 0:
                break
        time.sleep(0.1)
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


# The least-privilege split of deploy/postgresql/roles.sql: the owner migrates and prunes, the
# servers connect as the app's role.
ROLES_SQL = Path(__file__).parents[2] / "deploy" / "postgresql" / "roles.sql"
OWNER_ROLE = "leukolens_owner"
APP_ROLE = "leukolens_app"


@pytest.fixture(scope="session")
def postgres_roles(postgres: PostgresServer) -> PostgresServer:
    """The cluster with deploy/postgresql/roles.sql run once, as a DBA would (by psql)."""
    subprocess.run(
        [
            str(POSTGRES_BIN / "psql"),
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "owner_password=owner",
            "-v",
            "app_password=app",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-f",
            str(ROLES_SQL),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return postgres


@dataclass(frozen=True)
class SplitDatabase:
    """One database, migrated by its owner, with the app's role granted what it needs."""

    owner_url: str
    app_url: str


@pytest.fixture
def least_privilege_database(postgres_roles: PostgresServer) -> SplitDatabase:
    """A fresh database set up as roles.sql sets up `leukolens`, migrated as the owner and
    granted to the app's role as `python -m app.records migrate --grant-to` does."""
    import psycopg

    from app.records import records_db
    from app.records.privileges import grant_app_role

    name = f"leukolens_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_roles.url("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
        connection.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
        connection.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {APP_ROLE}')
    with psycopg.connect(postgres_roles.url(name), autocommit=True) as connection:
        connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        connection.execute(f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}")
        connection.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    base = f"postgresql+psycopg://{{}}@127.0.0.1:{postgres_roles.port}/{name}"
    split = SplitDatabase(owner_url=base.format(OWNER_ROLE), app_url=base.format(APP_ROLE))
    engine = records_db.create_engine(split.owner_url)
    records_db.migrate(engine)
    grant_app_role(engine, APP_ROLE)
    engine.dispose()
    return split
