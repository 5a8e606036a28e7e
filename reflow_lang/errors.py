"""The exception tree of reflow: one root, with locations and causes.

Compile-time problems are not exceptions: the front end reports them as
diagnostics. What is raised here is what goes wrong while a plan is loaded or run.
"""

from __future__ import annotations


class ReflowError(Exception):
    """The root of every error reflow raises on purpose."""


class PlanError(ReflowError, ValueError):
    """A compiled plan is malformed, of another version, or asks for what this runtime lacks."""


class StageError(ReflowError):
    """A user function failed inside a stage, under the `fail` policy or after its retries.

    The user's exception is the `__cause__`.
    """

    def __init__(
        self,
        stage: str,
        function: str,
        event_id: object,
        event: str,
        error: BaseException,
    ) -> None:
        self.stage = stage
        self.function = function
        self.event_id = event_id
        self.event = event
        self.error = error
        msg = (
            f"stage `{stage}` failed: `{function}` raised "
            f"{type(error).__name__}: {error}; event {event_id!r}: {event}"
        )
        super().__init__(msg)


class QueueClosed(ReflowError):
    """The queue was closed by this side; nothing more may be put or taken."""


class PeerGone(ReflowError):
    """The other side of a queue went away (a dead process or an unreachable server)."""


class WouldBlock(ReflowError):
    """A `*_nowait` operation could not proceed without waiting."""


class EndOfStream(ReflowError):
    """Every input of a stream has ended and everything before the end was taken."""


class TransportError(ReflowError):
    """A queue server could not be reached, did not answer, or was restarted."""


class WireError(ReflowError):
    """A value cannot cross a process boundary: msgpack cannot carry its type."""
