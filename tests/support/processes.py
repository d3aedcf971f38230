"""Real Bastion processes for end-to-end tests: start, wait until they answer, kill."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bastion.toml"
BASTION = [sys.executable, "-m", "bastion"]


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_CONFIG"] = str(EXAMPLE)
    env.update(extra or {})
    return env


def bastion(env: dict[str, str], *args: str) -> str:
    """Run one CLI command to completion; its stdout."""
    done = subprocess.run(
        [*BASTION, *args], env=environment(env), capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise AssertionError(f"bastion {' '.join(args)} failed: {done.stderr}")
    return done.stdout


class Processes:
    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self._logs / f"{name}.log").open("wb")
        self._files.append(log)
        process = subprocess.Popen(
            [*BASTION, *args],
            env=environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._running[name] = process
        return process

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return self._running[name]

    def log(self, name: str) -> str:
        return (self._logs / f"{name}.log").read_text(errors="replace")

    async def wait_http(self, name: str, url: str, attempts: int = 300) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(attempts):
                process = self._running[name]
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited early:\n{self.log(name)}")
                try:
                    async with session.get(url) as response:
                        if response.status < 500:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"{name} never answered {url}:\n{self.log(name)}")

    def stop_all(self) -> None:
        for process in self._running.values():
            if process.poll() is None:
                process.terminate()
        for process in self._running.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._files:
            log.close()
