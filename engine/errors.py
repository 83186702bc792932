"""Errors the engine raises; each carries a message written for the person using the app."""


class EngineError(Exception):
    """Base class: the message is shown to the user as is."""


class ModelNotAvailable(EngineError):
    """The model is not on disk and cannot be downloaded (offline, unknown id, no network)."""


class CheckpointError(EngineError):
    """The checkpoint files are missing, corrupt, or do not match the architecture."""


class InputError(EngineError):
    """The input (image, audio, text) cannot be used: empty, corrupt, wrong type, too large."""


class Cancelled(EngineError):
    """The work was cancelled through a CancelToken."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)
