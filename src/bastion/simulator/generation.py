"""The completions produced for one request, shared by chat and legacy completions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bastion.simulator.text import Completion, complete

# n > 1 is supported (vLLM supports it); beyond this it is refused as a likely mistake.
MAX_CHOICES = 16
# Distinct choices of one prompt differ by this step of the seed.
_CHOICE_SEED_STEP = 7919


def choices(seed: int, n: int, limit: int, *, ignore_eos: bool) -> list[Completion]:
    return [complete(seed + i * _CHOICE_SEED_STEP, limit, ignore_eos=ignore_eos) for i in range(n)]


@dataclass(slots=True)
class Generation:
    prompt_tokens: int
    completions: list[Completion]

    @property
    def completion_tokens(self) -> int:
        return sum(len(completion.pieces) for completion in self.completions)

    def usage(self, completion_tokens: int | None = None) -> dict[str, int]:
        done = self.completion_tokens if completion_tokens is None else completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }

    def steps(self) -> Iterator[tuple[int, str, str | None, bool]]:
        """(choice index, token, finish_reason on its last token, first of its step).

        Choices advance together, one token each per step, as a batched engine emits them;
        a step is one slot of the pacing schedule.
        """
        longest = max(len(completion.pieces) for completion in self.completions)
        for step in range(longest):
            first = True
            for index, completion in enumerate(self.completions):
                pieces = completion.pieces
                if step < len(pieces):
                    last = step == len(pieces) - 1
                    yield index, pieces[step], completion.finish_reason if last else None, first
                    first = False
