"""Stop strings on text and stop sequences on ids."""

from __future__ import annotations

from server.backends.llm.stops import StopSequenceMatcher, StopStringMatcher


def _feed_all(matcher: StopStringMatcher, deltas: list[str]) -> str:
    out = ""
    for d in deltas:
        out += matcher.feed(d)
        if matcher.stopped:
            return out
    return out + matcher.flush()


def test_stop_string_split_across_deltas_is_not_emitted() -> None:
    m = StopStringMatcher(["</answer>"])
    assert _feed_all(m, ["The result", " is 4</an", "swer> and more"]) == "The result is 4"
    assert m.stopped


def test_text_that_only_looks_like_a_stop_start_is_released() -> None:
    m = StopStringMatcher(["STOP"])
    assert m.feed("go ST") == "go "
    assert m.feed("ART") == "START"
    assert not m.stopped
    assert m.feed("ST") == ""
    assert m.flush() == "ST"


def test_earliest_of_several_stops_wins() -> None:
    m = StopStringMatcher(["world", "lo"])
    assert m.feed("hello world") == "hel"
    assert m.stopped
    assert m.feed("more") == ""


def test_no_stop_strings_passes_text_through() -> None:
    m = StopStringMatcher([])
    assert m.feed("abc") == "abc"
    assert m.flush() == ""


def test_stop_sequence_found_across_deltas_keeps_ids_through_the_match() -> None:
    m = StopSequenceMatcher([(7, 8, 9), (42,)])
    assert m.feed([1, 7]) is None
    assert m.feed([8]) is None
    assert m.feed([9, 10, 11]) == 1


def test_stop_sequence_earliest_position_in_one_delta() -> None:
    m = StopSequenceMatcher([(3, 4)])
    assert m.feed([1, 3, 4, 3, 4]) == 3
