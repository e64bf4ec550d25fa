from __future__ import annotations


class StackError(RuntimeError):
    """A local-stack component could not be installed, started or reached.

    ``hint`` tells the user what to do next; the CLI prints it under the message.
    """

    def __init__(self, message: str, *, hint: str = "", log: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.log = log

    def __str__(self) -> str:
        parts = [super().__str__()]
        if self.log:
            parts.append(f"log: {self.log}")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)
