"""Passive health per deployment: consecutive failures open a circuit, a probe closes it."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.core.clock import Clock


@dataclass(slots=True)
class Circuit:
    failures_to_open: int
    open_ms: int
    failures: int = 0
    opened_at: int | None = None
    probing: bool = False
    total_failures: int = 0
    total_successes: int = 0

    def state(self, now_ms: int) -> str:
        if self.opened_at is None:
            return "closed"
        if now_ms - self.opened_at >= self.open_ms:
            return "half_open"
        return "open"

    def may_try(self, now_ms: int) -> bool:
        state = self.state(now_ms)
        if state == "closed":
            return True
        if state == "half_open" and not self.probing:
            self.probing = True  # one probe at a time while half-open
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False
        self.total_successes += 1

    def abandon(self) -> None:
        """An attempt ended without a verdict (the caller left): free the probe slot."""
        self.probing = False

    def failure(self, now_ms: int) -> None:
        self.failures += 1
        self.total_failures += 1
        self.probing = False
        if self.opened_at is not None or self.failures >= self.failures_to_open:
            self.opened_at = now_ms


class CircuitBook:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._circuits: dict[str, Circuit] = {}

    def get(self, name: str, failures_to_open: int, open_s: float) -> Circuit:
        circuit = self._circuits.get(name)
        if circuit is None:
            circuit = Circuit(failures_to_open, int(open_s * 1000))
            self._circuits[name] = circuit
        return circuit

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = self._clock.now_ms()
        return {
            name: {
                "state": c.state(now),
                "consecutive_failures": c.failures,
                "failures": c.total_failures,
                "successes": c.total_successes,
            }
            for name, c in sorted(self._circuits.items())
        }
