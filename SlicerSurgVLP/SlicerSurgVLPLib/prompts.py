"""Prompt sets as the module's editable table (one row per class: its name and its prompts) and back.

The table sends the server an inline prompt set in the prompt-set file format (``name``, ``task``,
``ordered``, ``classes: [{name, prompts, typical_duration?}]``). Prompt texts are kept verbatim, trailing
spaces included, because the text encoder sees every character and published numbers only reproduce
with the very strings; in a table cell the prompts of one class are one per line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ClientError


@dataclass
class PromptRow:
    name: str
    prompts: list[str]
    typical_duration: float | None = None  # seconds; tunes the temporal decoder, kept from the built-in set


@dataclass
class PromptTable:
    name: str
    task: str = "phase"
    ordered: bool = False
    rows: list[PromptRow] = field(default_factory=list)

    @classmethod
    def from_prompt_set(cls, data: dict[str, Any], name: str | None = None) -> PromptTable:
        """Read a prompt set in the file format, or as ``/info`` lists one (class names and a prompts map)."""
        if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
            raise ClientError(f"prompt set {name or '?'}: no 'classes' list")
        prompts_by_name = data.get("prompts") if isinstance(data.get("prompts"), dict) else {}
        rows = []
        for entry in data["classes"]:
            if isinstance(entry, dict):
                rows.append(PromptRow(str(entry.get("name", "")), list(entry.get("prompts") or []),
                                      entry.get("typical_duration")))
            else:
                rows.append(PromptRow(str(entry), list(prompts_by_name.get(entry) or [])))
        return cls(str(data.get("name") or name or "prompts"), str(data.get("task", "phase")),
                   bool(data.get("ordered", False)), rows)

    def to_prompt_set(self) -> dict[str, Any]:
        """The inline prompt set for ``surgvlp_phase``'s ``prompt_set`` parameter, checked first."""
        names = [row.name for row in self.rows]
        if len(self.rows) < (2 if self.task == "phase" else 1):
            raise ClientError("a phase prompt set needs at least two classes")
        for position, row in enumerate(self.rows, start=1):
            if not row.name.strip():
                raise ClientError(f"row {position} of the prompt table has no class name")
            if not any(prompt.strip() for prompt in row.prompts):
                raise ClientError(f"class {row.name!r} has no prompt; give it at least one")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ClientError(f"class {repeated[0]!r} is listed twice; class names must be unique")
        classes = []
        for row in self.rows:
            entry: dict[str, Any] = {"name": row.name, "prompts": [prompt for prompt in row.prompts if prompt.strip()]}
            if row.typical_duration is not None:
                entry["typical_duration"] = row.typical_duration
            classes.append(entry)
        return {"name": self.name, "task": self.task, "ordered": self.ordered, "classes": classes}


def prompts_to_cell(prompts: list[str]) -> str:
    return "\n".join(prompts)


def cell_to_prompts(text: str) -> list[str]:
    """One prompt per line, verbatim (spaces kept); empty lines are not prompts."""
    return [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
