"""The host agent as a subprocess: `make_agent(**config)` writes a config and returns an Agent that
runs hostagent/devbench-agent like DevBench's transport would and reads its state directory."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sshd import AGENT_PATH, agent_python, make_agent_script

HUMAN_CREATED = re.compile(r"VM (\S+) Created and Ready")
HUMAN_SSH = re.compile(r"SSH Port: (\d+)")
HUMAN_VNC = re.compile(r"VNC Port: (\d+)")
STATUS = re.compile(r"(?:Status: |STATUS=)(\w+)")


def search(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


@dataclass
class Agent:
    """One agent configuration: run it like DevBench's transport would, inspect its state dir."""

    conf: Path
    state_dir: Path
    env: dict

    def argv(self, *args: str) -> list[str]:
        return [agent_python(), str(AGENT_PATH), *args]

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def create(self, name: str, *options: str) -> tuple[int, int]:
        result = self.run("create", name, *options)
        assert result.returncode == 0, result.stderr
        return int(search(HUMAN_SSH, result.stdout)), int(search(HUMAN_VNC, result.stdout))

    def status(self, name: str) -> str | None:
        return search(STATUS, self.run("status", name).stdout)

    def record(self, name: str) -> dict | None:
        path = self.state_dir / "vms" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def make_agent(tmp_path):
    counter = iter(range(1000))

    def make(extra_env: dict | None = None, **config) -> Agent:
        name = f"agent{next(counter)}"
        make_agent_script(tmp_path, script_name=name, **config)
        env = {**os.environ, "DEVBENCH_AGENT_CONFIG": str(tmp_path / f"{name}.conf"), **(extra_env or {})}
        state_dir = Path(config.get("state_dir", tmp_path / f"{name}.state"))
        return Agent(conf=tmp_path / f"{name}.conf", state_dir=state_dir, env=env)

    return make


@pytest.fixture
def agent(make_agent):
    return make_agent()


def make_keypair(directory: Path, name: str = "id_ed25519", comment: str = "alice@laptop") -> tuple[Path, str]:
    """A fresh ed25519 key pair by ssh-keygen: (private key path, public key line without newline)."""
    private = Path(directory) / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return private, private.with_name(name + ".pub").read_text().strip()


def b64(text: str) -> str:
    """The --ssh-key encoding of one public key line."""
    return base64.b64encode(text.encode()).decode()
