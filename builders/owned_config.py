"""The fields of config.pbtxt a builder owns, merged into the user's file without touching the rest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from builders.pbtxt_fields import FieldSpan, apply_edits, delete_span, quote, top_level_fields
from server.protocol.config_text import parse_config_text

NEW_FILE_HEADER = (
    "# Written by `hangar build {target}`. Edit freely: a rebuild rewrites only the fields the builder\n"
    "# owns (backend or platform, model_transaction_policy and the parameters it sets) and keeps the rest.\n"
)


@dataclass(frozen=True)
class OwnedConfig:
    """What a build sets in config.pbtxt; every other field, comment and parameter of the file is kept."""

    backend: str | None = None
    """Set `backend` (and drop `platform`)."""
    platform: str | None = None
    """Set `platform` (and drop `backend`)."""
    decoupled: bool | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    """Always written: they describe what was built (paths, engine properties)."""
    default_parameters: Mapping[str, str] = field(default_factory=dict)
    """Written only where the file does not set them yet: runtime knobs an operator may tune."""
    template: str | None = None
    """The whole file when none exists yet; None: a header, the name and the owned fields."""

    def slots(self) -> list[tuple[tuple[str, ...], str]]:
        """(field names that fill one slot, the text to put there): `backend` replaces `platform` in place."""
        slots: list[tuple[tuple[str, ...], str]] = []
        if self.backend is not None:
            slots.append((("backend", "platform"), f"backend: {quote(self.backend)}"))
        if self.platform is not None:
            slots.append((("platform", "backend"), f"platform: {quote(self.platform)}"))
        if self.decoupled is not None:
            flag = "true" if self.decoupled else "false"
            slots.append((("model_transaction_policy",), f"model_transaction_policy {{ decoupled: {flag} }}"))
        return slots


def new_config_text(model: str, target: str, owned: OwnedConfig) -> str:
    if owned.template is not None:
        return owned.template
    return NEW_FILE_HEADER.format(target=target) + f"name: {quote(model)}\n"


def merge_config(text: str, owned: OwnedConfig) -> str:
    """`text` with the owned fields set; unchanged (the same string) when they already hold those values.

    Raises:
        ValueError: `text` is not protobuf text (the caller checked it parses, so this is rare).
    """
    fields = top_level_fields(text)
    edits: list[tuple[int, int, str]] = []
    appended: list[str] = []
    for names, snippet in owned.slots():
        spans = [f for f in fields if f.name in names]
        if _parse(text, spans) == _parse_text(snippet):
            continue
        if spans:
            edits.append((spans[0].start, spans[0].end, snippet))
            edits += [(*delete_span(text, s.start, s.end), "") for s in spans[1:]]
        else:
            appended.append(snippet)
    param_edits, param_tail = _parameter_edits(text, [f for f in fields if f.name == "parameters"], owned)
    edits += param_edits
    appended += [param_tail] if param_tail else []
    if appended:
        sep = "" if not text or text.endswith("\n") else "\n"
        edits.append((len(text), len(text), sep + "\n".join(appended) + "\n"))
    return apply_edits(text, edits) if edits else text


def _parse_text(snippet: str) -> dict[str, Any]:
    return parse_config_text(snippet, "<owned fields>")


def _parse(text: str, spans: list[FieldSpan]) -> dict[str, Any]:
    return _parse_text("\n".join(text[s.start : s.end] for s in spans)) if spans else {}


def _entries(text: str, span: FieldSpan) -> dict[str, str]:
    params = _parse(text, [span]).get("parameters", {})
    return {k: str(v.get("string_value", "")) for k, v in params.items()}


def _render(params: Mapping[str, str]) -> str:
    return "\n".join(
        f"parameters {{ key: {quote(k)} value: {{ string_value: {quote(v)} }} }}" for k, v in params.items()
    )


def _parameter_edits(
    text: str, spans: list[FieldSpan], owned: OwnedConfig
) -> tuple[list[tuple[int, int, str]], str]:
    """Edits of the existing `parameters` fields, and the text to append when there were none."""
    per_span = [_entries(text, s) for s in spans]
    current = {k: v for entries in per_span for k, v in entries.items()}
    wanted = dict(owned.parameters)
    wanted.update({k: v for k, v in owned.default_parameters.items() if k not in current})
    if all(current.get(k) == v for k, v in wanted.items()):
        return [], ""
    if not spans:
        return [], _render(wanted)
    edits: list[tuple[int, int, str]] = []
    for i, (span, entries) in enumerate(zip(spans, per_span, strict=True)):
        kept = {k: v for k, v in entries.items() if k not in wanted}
        last = i == len(spans) - 1
        if last:  # the owned entries go where the user's parameters end
            mine = text[span.start : span.end] if len(kept) == len(entries) else _render(kept)
            edits.append((span.start, span.end, "\n".join(p for p in (mine, _render(wanted)) if p)))
        elif not kept:
            edits.append((*delete_span(text, span.start, span.end), ""))
        elif len(kept) != len(entries):
            edits.append((span.start, span.end, _render(kept)))
    return edits, ""
