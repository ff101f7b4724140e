"""Top-level fields of protobuf text (config.pbtxt) located by character span, comments and layout kept,
so a builder can replace the fields it owns and leave every other byte of the user's file alone."""

from __future__ import annotations

from dataclasses import dataclass

_SPACE = " \t\r\n\f\v"
_WORD = "_.+-"
_OPEN = "{<["
_CLOSE = "}>]"
_QUOTES = "\"'"


@dataclass(frozen=True)
class FieldSpan:
    """`text[start:end]` is one top-level field: name, value and an optional `,` or `;`."""

    name: str
    start: int
    end: int


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)

    def error(self, at: int, what: str) -> ValueError:
        line = self.text.count("\n", 0, at) + 1
        col = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return ValueError(f"{line}:{col}: {what}")

    def skip(self, i: int) -> int:
        """Past whitespace and `#` comments."""
        while i < self.n:
            if self.text[i] in _SPACE:
                i += 1
            elif self.text[i] == "#":
                nl = self.text.find("\n", i)
                i = self.n if nl < 0 else nl + 1
            else:
                break
        return i

    def word_end(self, i: int) -> int:
        while i < self.n and (self.text[i].isalnum() or self.text[i] in _WORD):
            i += 1
        return i

    def string_end(self, i: int) -> int:
        start, quote, i = i, self.text[i], i + 1
        while i < self.n and self.text[i] not in (quote, "\n"):
            i += 2 if self.text[i] == "\\" else 1
        if i >= self.n or self.text[i] != quote:
            raise self.error(start, "unterminated string")
        return i + 1

    def block_end(self, i: int) -> int:
        depth = 0
        while True:
            i = self.skip(i)
            if i >= self.n:
                raise self.error(i, "unbalanced brackets")
            c = self.text[i]
            if c in _QUOTES:
                i = self.string_end(i)
                continue
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1

    def value_end(self, i: int) -> int:
        if i >= self.n:
            raise self.error(i, "missing value")
        c = self.text[i]
        if c in _OPEN:
            return self.block_end(i)
        if c in _QUOTES:
            i = self.string_end(i)
            while (j := self.skip(i)) < self.n and self.text[j] in _QUOTES:  # "a" "b" concatenate
                i = self.string_end(j)
            return i
        end = self.word_end(i)
        if end == i:
            raise self.error(i, f"unexpected {c!r}")
        return end


def top_level_fields(text: str) -> list[FieldSpan]:
    """Every top-level field in order (repeated fields appear once per occurrence).

    Raises:
        ValueError: text that is not protobuf text format ("line:col: what").
    """
    scan = _Scanner(text)
    fields: list[FieldSpan] = []
    i = scan.skip(0)
    while i < scan.n:
        name_end = scan.word_end(i)
        if name_end == i:
            raise scan.error(i, f"expected a field name, found {text[i]!r}")
        j = scan.skip(name_end)
        if j < scan.n and text[j] == ":":
            j = scan.skip(j + 1)
        end = scan.value_end(j)
        k = scan.skip(end)
        if k < scan.n and text[k] in ",;":
            end = k + 1
        fields.append(FieldSpan(text[i:name_end], i, end))
        i = scan.skip(end)
    return fields


def delete_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The range to delete for a field: whole lines when the field stood alone on them."""
    line_start = text.rfind("\n", 0, start) + 1
    nl = text.find("\n", end)
    line_end = len(text) if nl < 0 else nl + 1
    if text[line_start:start].strip(" \t") == "" and text[end:line_end].strip() == "":
        return line_start, line_end
    return start, end


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace each non-overlapping `(start, end)` range with its text."""
    for start, end, new in sorted(edits, key=lambda e: e[0], reverse=True):
        text = text[:start] + new + text[end:]
    return text


def quote(value: str) -> str:
    """A protobuf text string literal (UTF-8 kept as is)."""
    out = []
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
