"""What a use case says about bad input: one message per form field, shown beside the field.

``FormError`` is an :class:`OperatorError` (a request that cannot be carried out, not an HTTP
error): the dashboard renders it inside the page, the CLI prints it.
"""

from __future__ import annotations

from bastion.errors import OperatorError

FORM = "_form"
"""The key of a message about the form as a whole rather than one field."""


class FormError(OperatorError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors

    @classmethod
    def field(cls, name: str, message: str) -> FormError:
        return cls({name: message})
