"""AFEP sandbox layer: run generated feature code in a confined, separate process."""

from sandbox.limits import SandboxLimits, SandboxResult, Violation
from sandbox.policy import check_code
from sandbox.runner import Isolation, Sandbox

__all__ = ["Isolation", "Sandbox", "SandboxLimits", "SandboxResult", "Violation", "check_code"]
