"""A short run of every fuzz harness (fuzz/): the parsers that face the network never raise
anything but their documented errors, on the seeds and on what the fuzzer derives from them
in a few seconds.  ``fuzz/run`` is the long run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
HARNESSES = ("keys", "sse", "multipart", "tts", "validation")
SECONDS = 4  # per harness: 5 harnesses × (start-up + 4 s) stays within 30 s
RUNS = 200_000
# The slowest input of a 150 s run takes well under a second; a short run beside the rest of
# the suite on 2 cores can still be starved for one.  fuzz/run hunts slow inputs at 1 s.
INPUT_SECONDS = 10


def test_every_harness_has_seeds_and_a_place_in_the_readme() -> None:
    readme = (FUZZ / "README.md").read_text()
    for name in HARNESSES:
        assert (FUZZ / f"fuzz_{name}.py").is_file()
        assert any((FUZZ / "seeds" / name).iterdir())
        assert f"fuzz_{name}.py" in readme


def _findings(output: str) -> str:
    """What libFuzzer and atheris said about a failure (not the per-input chatter)."""
    lines = output.splitlines()
    start = next(
        (
            n
            for n, line in enumerate(lines)
            if "===" in line or "Traceback" in line or "ERROR" in line
        ),
        max(len(lines) - 40, 0),
    )
    return "\n".join(lines[start : start + 80])


@pytest.mark.parametrize("name", HARNESSES)
def test_fuzz_harness_short_run(name: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "seeds" / name, corpus)
    done = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"fuzz_{name}.py"),
            f"-runs={RUNS}",
            f"-max_total_time={SECONDS}",
            f"-timeout={INPUT_SECONDS}",
            "-rss_limit_mb=1024",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=FUZZ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, _findings(output)
    assert "Done" in output, output[-2000:]
    assert not list(tmp_path.glob("crash-*")), output[-4000:]
