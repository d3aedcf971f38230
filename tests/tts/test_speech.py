"""Real speech: with espeak-ng installed, the simulator speaks the text."""

from __future__ import annotations

import io
import wave

import pytest

from bastion.simulator.riva import RivaOptions
from bastion.simulator.riva.speech import espeak_binary
from tests.support.harness import Stack
from tests.tts.support import VOICES, speech, tts

pytestmark = pytest.mark.skipif(espeak_binary() is None, reason="espeak-ng is not installed")


@pytest.fixture
def riva_options() -> RivaOptions:
    return RivaOptions(voice="espeak")


async def test_real_speech_has_the_same_duration_at_every_rate(stack: Stack) -> None:
    """With espeak-ng the simulator speaks; its audio is resampled, never stretched."""
    _, key = await stack.account_and_key()
    durations = []
    for rate in (8000, 22050, 48000):
        reply = await tts(stack, key, speech(sample_rate_hz=rate), headers={"Accept": "audio/wav"})
        assert reply.status == 200
        with wave.open(io.BytesIO(reply.body)) as wav:
            assert wav.getframerate() == rate
            durations.append(wav.getnframes() / rate)
    assert durations[0] > 0.5  # a short sentence takes about a second to say
    assert max(durations) - min(durations) < 0.001


@pytest.mark.parametrize("language", sorted(VOICES))
async def test_each_language_is_spoken(stack: Stack, language: str) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(
        stack,
        key,
        speech(text="Bastion", language_code=language, voice_name=VOICES[language]),
        headers={"Accept": "audio/wav"},
    )
    assert reply.status == 200
    with wave.open(io.BytesIO(reply.body)) as wav:
        assert wav.getnframes() > 0.2 * wav.getframerate()
