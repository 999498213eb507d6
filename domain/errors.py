"""Typed domain errors. Each message says what is wrong and what to do next."""

from __future__ import annotations


class DomainError(Exception):
    """A command that the current state does not allow."""


class InvalidTransition(DomainError):
    """The aggregate is in a state where this command makes no sense."""


class UnknownAggregate(DomainError):
    """The command addresses an aggregate that was never created."""


class ConflictingCommand(DomainError):
    """The same id was used before with different content."""


class InvalidInput(DomainError):
    """A command field is malformed (control characters, too long, out of range): fix the input and resend."""
