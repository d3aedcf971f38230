"""Errors the simulator answers itself, in OpenAI's envelope."""

from __future__ import annotations


class SimulatorError(Exception):
    """A request the simulator refuses; the endpoint wrapper turns it into a response."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type_: str = "invalid_request_error",
        code: str = "invalid_request",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type_
        self.code = code
        self.param = param

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid(message: str, param: str | None = None) -> SimulatorError:
    return SimulatorError(message, param=param)
