"""PostgreSQL 15 from Debian's packages, in its own data folder, on its own loopback port.

PostgreSQL refuses to run as root, so when the stack runs as root the server runs as an
unprivileged OS user (created on first use) that owns the data folder.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pagestream.stack.errors import StackError
from pagestream.stack.paths import StackPaths
from pagestream.stack.pki import ServerTls
from pagestream.stack.process import ManagedProcess, wait_until

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

PG_MAJOR = 15
SERVICE_USER = "pagestream"
DATABASE = "pagestream"
SUPERUSER = "postgres"


def pg_bindir() -> Path:
    bindir = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
    if not (bindir / "postgres").exists():
        raise StackError(
            f"PostgreSQL {PG_MAJOR} is not installed",
            hint=f"run `make bootstrap` (it runs `apt-get install postgresql-{PG_MAJOR}`)",
        )
    return bindir


def ensure_service_user() -> str | None:
    """The OS user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


def traversable_by(path: Path, user: str) -> bool:
    entry = pwd.getpwnam(user)
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == entry.pw_uid:
            continue
        if not ((st.st_gid == entry.pw_gid and st.st_mode & 0o010) or st.st_mode & 0o001):
            return False
    return True


# Where the data folder goes when the service user cannot reach the stack's state folder
# (a state folder under /root, say): one subfolder per state folder, so stacks never share.
FALLBACK_DATA_ROOT = Path("/var/lib/pagestream/postgres")
# In a fallback folder: the state folder it belongs to. Deleting a state folder (pytest's
# tmp_path rotation, the test-run reaper) cannot reach the data outside it; the next initdb
# removes such orphans.
FALLBACK_OWNER = "owner"


def _postmaster_alive(data_dir: Path) -> bool:
    """Whether a server runs on ``data_dir`` (line 1 of postmaster.pid is its pid)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return Path(f"/proc/{pid}").exists()


def prune_orphaned_data_roots(root: Path = FALLBACK_DATA_ROOT) -> list[Path]:
    """Remove the fallback data folders whose state folder is gone and whose server is not
    running; return them."""
    removed = []
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            owner = Path((folder / FALLBACK_OWNER).read_text().strip())
        except OSError:
            continue  # not ours, or still being created: leave it
        if owner.exists() or _postmaster_alive(folder / "data"):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@dataclass
class Postgres:
    paths: StackPaths
    port: int
    # Tests trade crash safety for speed; the embedded platform keeps fsync on.
    durable: bool = True
    # Serve TLS (ssl=on) with this certificate; plain connections are still accepted.
    tls: ServerTls | None = None

    @property
    def home(self) -> Path:
        return self.paths.component_dir("postgres")

    @property
    def data_root(self) -> Path:
        user = ensure_service_user()
        if user is None or traversable_by(self.home, user):
            return self.home
        import hashlib

        return (
            FALLBACK_DATA_ROOT / hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        )

    @property
    def data_dir(self) -> Path:
        return self.data_root / "data"

    @property
    def password_file(self) -> Path:
        return self.home / "superuser-password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "postgres",
            self.home / "postgres.pid",
            self.paths.logs / "postgres.log",
            signal_group=False,
            tied=self.paths.tied,
            # Immediate shutdown: the postmaster ends its backends, frees its SysV shared
            # memory segment (a SIGKILL leaves it, 56 bytes per server) and exits.
            death_signal=signal.SIGQUIT,
        )

    def dsn(self, database: str = DATABASE) -> str:
        return (
            f"host=127.0.0.1 port={self.port} dbname={database} user={SUPERUSER} "
            f"password={self.password} connect_timeout=5"
        )

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def jdbc_url(self, database: str = DATABASE) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{database}"

    def ensure_installed(self) -> Path:
        return pg_bindir()

    def _initdb(self, bindir: Path, user: str | None) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
            self.password_file.chmod(0o600)
        root = self.data_root
        if root != self.home:
            prune_orphaned_data_roots(root.parent)
            root.mkdir(parents=True, exist_ok=True)
            (root / FALLBACK_OWNER).write_text(f"{self.home.resolve()}\n")
            (self.home / "data-location").write_text(f"{root}\n")
        root.mkdir(parents=True, exist_ok=True)
        staging = root / "initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        pwfile = staging / "pw"
        pwfile.write_text(self.password + "\n")
        if user:
            shutil.chown(staging, user, user)
            shutil.chown(pwfile, user, user)
        proc = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(staging / "data"),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            capture_output=True,
            text=True,
            check=False,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
        pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise StackError(f"initdb failed:\n{proc.stdout}{proc.stderr}")
        # Only a completely initialised cluster ever appears at data_dir.
        os.replace(staging / "data", self.data_dir)
        shutil.rmtree(staging, ignore_errors=True)

    def start(self, *, timeout: float = 60.0) -> None:
        bindir = self.ensure_installed()
        user = ensure_service_user()
        if self.data_dir.exists() and not self.password_file.exists():
            # The state folder was wiped but a fallback data folder survived: its password is
            # gone with the state, so the data is unreachable. Start afresh.
            shutil.rmtree(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bindir, user)
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            # No unix socket: paths under a deep state folder overflow sun_path.
            "unix_socket_directories": "",
            "shared_buffers": "256MB",
            "work_mem": "32MB",
            "maintenance_work_mem": "256MB",
            "max_wal_size": "4GB",
            "max_connections": "100",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "timezone": "UTC",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        if self.tls is not None:
            cert_file, key_file = self._install_tls(self.tls, user)
            settings |= {
                "ssl": "on",
                "ssl_cert_file": str(cert_file),
                "ssl_key_file": str(key_file),
            }
        argv = [str(bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        proc = self.process
        proc.start(argv, user=user)
        wait_until(
            self._accepts_connections,
            timeout=timeout,
            what=f"PostgreSQL on 127.0.0.1:{self.port}",
            alive=proc.running,
            log_path=proc.log_file,
        )
        self._ensure_database()

    def _install_tls(self, tls: ServerTls, user: str | None) -> tuple[Path, Path]:
        """The certificate and key where the server may read them: PostgreSQL refuses a key
        that its own user does not own with mode 0600."""
        folder = self.data_root / "tls"
        folder.mkdir(mode=0o700, exist_ok=True)
        cert, key = folder / "server.crt", folder / "server.key"
        cert.write_bytes(tls.cert_file.read_bytes())
        key.write_bytes(tls.key_file.read_bytes())
        key.chmod(0o600)
        if user:
            for path in (folder, cert, key):
                shutil.chown(path, user, user)
        return cert, key

    def _connect(self, database: str) -> PgConnection:
        import psycopg2

        return psycopg2.connect(self.dsn(database))

    def _accepts_connections(self) -> bool:
        import psycopg2

        try:
            self._connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    def _ensure_database(self) -> None:
        conn = self._connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            conn.close()

    def running(self) -> bool:
        return self.process.running()

    def healthy(self) -> bool:
        return self.process.running() and self._accepts_connections()

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
        self.process.stop(timeout=60, sig=signal.SIGINT)

    def remove_data(self) -> None:
        """Stop the server and delete its data, the fallback folder outside the state too."""
        self.stop()
        data = self.data_root if self.data_root != self.home else self.data_dir
        if data.exists():
            shutil.rmtree(data)
