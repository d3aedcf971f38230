"""What every harness shares: atheris set-up and the documented error types.

A harness passes when every input either succeeds or raises one of the errors its parser
documents (``EXPECTED``); anything else (a ``KeyError``, a ``TypeError``, an aiohttp
internals exception, a hang) is a finding.  Inputs must also finish quickly: ``fuzz/run``
passes ``-timeout=1`` (libFuzzer reports any input over one second).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris


def main(test_one_input: Callable[[bytes], None]) -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
