"""Riva upstream settings: API-key metadata (as hosted NIM endpoints need) and TLS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bastion.simulator.riva import RivaOptions, RivaSimulator, start_riva
from tests.support.harness import Stack
from tests.tts.support import speech, tts


class TestMetadata:
    @pytest.fixture
    def riva_options(self) -> RivaOptions:
        return RivaOptions(voice="tones", api_key="nim-secret")

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        metadata = {"authorization": "Bearer nim-secret", "function-id": "tts-1"}
        return {"upstreams": {"riva-simulator": {"metadata": metadata}}}

    async def test_metadata_is_sent_with_every_call(
        self, stack: Stack, riva: RivaSimulator
    ) -> None:
        _, key = await stack.account_and_key()
        assert (await tts(stack, key, speech())).status == 200
        [call] = riva.journal
        assert {"authorization", "function-id"} <= set(call["metadata_keys"])


class TestWrongKey:
    @pytest.fixture
    def riva_options(self) -> RivaOptions:
        return RivaOptions(voice="tones", api_key="nim-secret")

    async def test_a_refused_credential_is_a_502(self, stack: Stack, riva: RivaSimulator) -> None:
        _, key = await stack.account_and_key()
        reply = await tts(stack, key, speech())
        assert reply.status == 502
        message = reply.error()["message"]
        assert "refused Bastion's credentials (UNAUTHENTICATED)" in message
        assert "nim-secret" not in message


def certificate(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
class TestTls:
    @pytest.fixture
    async def riva_tls(self, tmp_path: Path) -> AsyncIterator[tuple[RivaSimulator, Path]]:
        key, cert = certificate(tmp_path)
        simulator = await start_riva(
            "127.0.0.1", 0, RivaOptions(voice="tones"), tls=(key.read_bytes(), cert.read_bytes())
        )
        yield simulator, cert
        await simulator.stop(None)

    @pytest.fixture
    def config(self, riva_tls: tuple[RivaSimulator, Path]) -> dict[str, Any]:
        simulator, cert = riva_tls
        return {
            "upstreams": {
                "riva-tls": {
                    "base_url": f"grpcs://localhost:{simulator.port}",
                    "tls_ca_file": str(cert),
                }
            },
            "models": {"tts-en-us": {"deployments": [{"upstream": "riva-tls"}]}},
        }

    async def test_grpcs_with_a_private_ca(
        self, stack: Stack, riva_tls: tuple[RivaSimulator, Path]
    ) -> None:
        simulator, _ = riva_tls
        _, key = await stack.account_and_key()
        reply = await tts(stack, key, speech())
        assert reply.status == 200, reply.body
        assert simulator.url.startswith("grpcs://")
        assert [c["status"] for c in simulator.journal] == ["OK"]
