"""docs/configuration.md documents every key the loader reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LOADER = ROOT / "src" / "bastion" / "settings" / "load.py"
DOC = ROOT / "docs" / "configuration.md"

READ = re.compile(
    r"\b(?:text|integer|number|flag|str_list|networks|table|tables|table_list|string_map"
    r'|converted|price)\(\s*"([a-z_0-9]+)"'
)


def test_every_key_the_loader_reads_is_documented() -> None:
    keys = set(READ.findall(LOADER.read_text()))
    spans = re.findall(r"`([^`]+)`", DOC.read_text())
    documented = {word for span in spans for word in re.findall(r"[a-z_0-9]+", span)}
    assert len(keys) > 60
    assert sorted(keys - documented) == []
