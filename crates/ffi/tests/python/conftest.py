"""Fixtures for the binding tests: a real doorstep-server process on 127.0.0.1 over a
temporary data directory, set up with the server's own admin CLI."""

import os
import re
import subprocess
import tempfile

import pytest

SERVER = os.environ.get("DOORSTEP_SERVER", "target/debug/doorstep-server")


class County:
    """A running server with one grid, a grid worker and a supervisor."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
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

    def start(self, listen="127.0.0.1:0"):
        self.process = subprocess.Popen(
            [SERVER, "--data-dir", self.data_dir, "serve", "--listen", listen],
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
def phones():
    with tempfile.TemporaryDirectory() as d:
        yield d
