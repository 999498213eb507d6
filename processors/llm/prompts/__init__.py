"""Versioned prompt files: a front matter (name, version, task), then a `string.Template` body.

A prompt's version goes into every trace of a call made with it, so a change of wording
is visible in the feed and the cache keys change with it (the text is part of the request).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template
from typing import Any


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    task: str
    template: str

    def render(self, **values: Any) -> str:
        return Template(self.template).substitute({k: str(v) for k, v in values.items()})


@cache
def prompt(name: str) -> Prompt:
    """The prompt file `<name>.md` of this package."""
    text = resources.files(__package__).joinpath(f"{name}.md").read_text("utf-8")
    head, _, body = text.removeprefix("---\n").partition("\n---\n")
    meta = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    meta = {k.strip(): v.strip() for k, v in meta.items()}
    if meta.get("name") != name or not meta.get("version", "").isdigit():
        raise ValueError(f"prompt {name}.md needs a front matter with name: {name} and an integer version")
    return Prompt(name, int(meta["version"]), meta.get("task", "reasoning"), body.strip() + "\n")
