"""Fixtures for the binding tests: a real doorstep-server process on 127.0.0.1 over a
temporary data directory, set up with the server's own admin CLI."""

import os
import re
import subprocess
import tempfile

import pytest

SERVER = os.environ.get("DOORSTEP_SERVER", "target/debug/doorstep-server")


def self_signed_certificate(directory, name="server"):
    """A self-signed certificate and key for localhost and 127.0.0.1, made with the openssl
    command: what a county without a public certificate runs. Returns (cert path, key path)."""
    cert = os.path.join(directory, name + "-cert.pem")
    key = os.path.join(directory, name + "-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True,
        capture_output=True,
    )
    return cert, key


class County:
    """A running server with one grid, a grid worker and a supervisor; over HTTPS when given a
    (certificate, key) pair."""

    def __init__(self, data_dir, tls=None):
        self.data_dir = data_dir
        self.tls = tls
        self.grid = self.admin("grid", "add", "--name", "幸福社区第一网格", "--community", "幸福社区").split("grid created: ")[1].split()[0]
        self.worker = self._member("王芳", "grid_worker")
        self.supervisor = self._member("李主任", "supervisor")
        self.process = None
        self.url = None

    def admin(self, *args):
        out = subprocess.run([SERVER, "--data-dir", self.data_dir, *args], check=True, capture_output=True, text=True)
        return out.stdout

    def _member(self, name, role):
        out = self.admin("member", "add", "--name", name, "--role", role, "--grid", self.grid)
        return out.split("member added: ")[1].split()[0]

    def code(self, member):
        return self.admin("enrol-code", "--member", member).strip().splitlines()[-1]

    @property
    def ca_pem(self):
        """The PEM text a phone is given to trust this server (its self-signed certificate)."""
        with open(self.tls[0]) as cert:
            return cert.read()

    def start(self, listen="127.0.0.1:0"):
        tls = ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]] if self.tls else []
        self.process = subprocess.Popen(
            [SERVER, "--data-dir", self.data_dir, "serve", "--listen", listen, *tls],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for line in self.process.stdout:
            match = re.search(r"listening on (\S+)", line)
            if match:
                self.url = match.group(1)
                return self.url
        raise RuntimeError("the server did not start")

    def stop(self):
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def county():
    with tempfile.TemporaryDirectory() as data_dir:
        c = County(data_dir)
        c.start()
        yield c
        c.stop()


@pytest.fixture
def tls_county():
    with tempfile.TemporaryDirectory() as data_dir:
        c = County(data_dir, tls=self_signed_certificate(data_dir))
        c.start()
        yield c
        c.stop()


@pytest.fixture
def phones():
    with tempfile.TemporaryDirectory() as d:
        yield d
