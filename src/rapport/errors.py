"""Errors users see. Each carries a one-line message meant for a terminal or an API response."""

from __future__ import annotations


class RapportError(Exception):
    """Base class; `retryable` says whether the same call may succeed later."""

    retryable = False


class InputError(RapportError):
    """The input (a recording, a transcript, a config) is unusable as given."""


class MediaError(InputError):
    """A recording that cannot be decoded, or has nothing to analyse."""


class TranscriptError(InputError):
    """A transcript that does not parse; the message names the line."""


class OutputError(RapportError):
    """An output file cannot be written where asked."""


class ModelError(RapportError):
    """A model pack that is missing, incomplete or fails its checksum."""


class FetchError(ModelError):
    """Weights could not be downloaded or converted."""

    retryable = True
