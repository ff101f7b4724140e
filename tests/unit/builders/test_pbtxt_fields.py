"""builders/pbtxt_fields: top-level field spans of config.pbtxt text, comments and layout untouched."""

from __future__ import annotations

import pytest

from builders.pbtxt_fields import apply_edits, delete_span, quote, top_level_fields
from server.protocol.config_text import parse_config_text

TEXT = """\
# a comment with { braces } and "quotes"
name: "m"   # trailing comment
backend: 'py' "thon"
max_batch_size: -1,
input [ { name: "a]}", dims: [ 1 ] } ];
model_transaction_policy <
  decoupled: true
>
parameters: { key: "k" value { string_value: "v # not a comment" } }
"""


def test_spans_cover_each_field_with_its_separator() -> None:
    fields = top_level_fields(TEXT)
    assert [f.name for f in fields] == [
        "name", "backend", "max_batch_size", "input", "model_transaction_policy", "parameters"
    ]  # fmt: skip
    texts = [TEXT[f.start : f.end] for f in fields]
    assert texts[1] == "backend: 'py' \"thon\""
    assert texts[2] == "max_batch_size: -1,"
    assert texts[3] == 'input [ { name: "a]}", dims: [ 1 ] } ];'
    assert texts[4].startswith("model_transaction_policy <") and texts[4].endswith(">")
    # each span parses alone, to the same values as the whole file
    assert parse_config_text(TEXT, "t")["parameters"] == parse_config_text(texts[5], "t")["parameters"]


@pytest.mark.parametrize(
    ("text", "where"),
    [('name: "unterminated\n', "1:7"), ('input [ { name: "a" }\n', "2:1"), ("{ x: 1 }", "1:1")],
)
def test_malformed_text_is_located(text: str, where: str) -> None:
    with pytest.raises(ValueError, match=where):
        top_level_fields(text)


def test_deleting_a_field_alone_on_its_line_removes_the_line() -> None:
    text = 'name: "m"\nbackend: "x"\nmax_batch_size: 1\n'
    field = top_level_fields(text)[1]
    start, end = delete_span(text, field.start, field.end)
    assert apply_edits(text, [(start, end, "")]) == 'name: "m"\nmax_batch_size: 1\n'
    inline = 'name: "m" backend: "x"\n'
    field = top_level_fields(inline)[1]
    assert apply_edits(inline, [(*delete_span(inline, field.start, field.end), "")]) == 'name: "m" \n'


def test_quote_round_trips_through_the_protobuf_parser() -> None:
    value = 'a "b" \\ c\nd\té — 日本'
    assert parse_config_text(f"name: {quote(value)}", "t")["name"] == value
