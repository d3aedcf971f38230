"""Read py-spy's collapsed stacks (``--format raw``): top functions by own and total time.

python -m bench.flame profile.txt [--top 25] [--filter bastion]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# py-spy raw frames look like "function (path/to/file.py:123)"; the line is optional.
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Profile:
    samples: int
    own: Counter[str]
    total: Counter[str]
    own_lines: Counter[str]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def frame_name(frame: str, *, with_line: bool) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    where = _short(match["file"])
    if with_line and match["line"]:
        where += f":{match['line']}"
    return f"{match['func']} ({where})"


def read(path: Path, *, idle: bool = False) -> Profile:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    own_lines: Counter[str] = Counter()
    samples = 0
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        leaf = frames[-1]
        own[frame_name(leaf, with_line=False)] += count
        own_lines[frame_name(leaf, with_line=True)] += count
        for name in {frame_name(f, with_line=False) for f in frames}:
            total[name] += count
    return Profile(samples, own, total, own_lines)


def table(profile: Profile, counter: Counter[str], top: int, pattern: str | None) -> list[str]:
    lines = ["| share | function (file) |", "|---:|---|"]
    shown = 0
    for name, count in counter.most_common():
        if pattern and not re.search(pattern, name):
            continue
        lines.append(f"| {count / profile.samples:6.1%} | `{name}` |")
        shown += 1
        if shown >= top:
            break
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flame", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", default=None, help="regex on 'function (file)'")
    args = parser.parse_args(argv)
    profile = read(args.file)
    print(f"{profile.samples} samples\n\n## own time\n")
    print("\n".join(table(profile, profile.own_lines, args.top, args.filter)))
    print("\n## total time (inclusive)\n")
    print("\n".join(table(profile, profile.total, args.top, args.filter)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
