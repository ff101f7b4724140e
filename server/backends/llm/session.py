"""One request's life on the event loop: token deltas in, detokenized and stop-checked responses out."""

from __future__ import annotations

from server.backends.llm.deltas import FinishReason, TokenDelta
from server.backends.llm.detokenizer import IncrementalDetokenizer
from server.backends.llm.responses import ResponseBuilder, ResponseContent
from server.backends.llm.stops import StopSequenceMatcher, StopStringMatcher
from server.backends.llm.tokenizer import TextTokenizer
from server.backends.llm.translation import GenerationRequest
from server.errors import BackendError
from server.types import InferResponse


class GenerationSession:
    """Turns the engine's deltas for one request into its responses.

    Streaming: one response per delta that completes text (or adds ids, without text outputs), the
    last with final=True.
    Non-streaming: one final response with the whole output (the prompt too, unless excluded).
    `stop_engine` turns true when a stop string or stop sequence ended the request before the engine did.
    """

    def __init__(
        self, gen: GenerationRequest, tokenizer: TextTokenizer | None, builder: ResponseBuilder
    ) -> None:
        self._gen = gen
        self._tokenizer = tokenizer
        self._builder = builder
        wants_text = "text_output" in gen.outputs or bool(gen.sampling.stop_strings)
        self._detok = (
            IncrementalDetokenizer(tokenizer, gen.prompt_token_ids) if wants_text and tokenizer else None
        )
        self._stop_strings = StopStringMatcher(gen.sampling.stop_strings)
        self._stop_sequences = StopSequenceMatcher(gen.stop_sequences)
        # With text in the outputs a response goes out when text does (ids ride along with their text).
        self._text_driven = "text_output" in gen.outputs
        self._all_ids: list[int] = []
        self._text: list[str] = []
        self._unsent_ids: list[int] = []
        self._unsent_logprobs: list[float] = []
        self._unsent_text: list[str] = []
        self._cum_logprob = 0.0
        self.finished = False
        self.stop_engine = False
        self.finish_reason: FinishReason | None = None

    def on_delta(self, delta: TokenDelta) -> InferResponse | None:
        """The response this delta completes, or None when it adds nothing a client would see yet."""
        assert not self.finished, "no deltas after the final one"
        if delta.error is not None:
            self.finished, self.finish_reason = True, FinishReason.ERROR
            return self._builder.failure(BackendError(f"generation failed: {delta.error}"))
        ids, logprobs = list(delta.token_ids), list(delta.logprobs or ())
        reason = delta.finish_reason if delta.finished else None
        if reason is FinishReason.STOP and ids and ids[-1] in self._gen.end_token_ids:
            ids, logprobs = ids[:-1], logprobs[: len(ids) - 1]
        keep = self._stop_sequences.feed(ids)
        if keep is not None:
            ids, logprobs, reason = ids[:keep], logprobs[:keep], FinishReason.STOP
        text = self._detokenize(ids, final=reason is not None)
        if self._stop_strings.stopped:
            reason = FinishReason.STOP
        if reason is not None:
            self.finished, self.finish_reason = True, reason
            self.stop_engine = not delta.finished
        self._record(ids, logprobs, text)
        if self._gen.streaming:
            return self._stream_response(reason)
        return self._full_response(reason) if self.finished else None

    @property
    def num_output_tokens(self) -> int:
        return len(self._all_ids)

    def _detokenize(self, ids: list[int], final: bool) -> str:
        if self._detok is None:
            return ""
        text = self._stop_strings.feed(self._detok.push(ids))
        if final and not self._stop_strings.stopped:
            text += self._stop_strings.feed(self._detok.flush())
            text += self._stop_strings.flush()
        return text

    def _record(self, ids: list[int], logprobs: list[float], text: str) -> None:
        self._all_ids += ids
        self._unsent_ids += ids
        self._unsent_logprobs += logprobs
        self._cum_logprob += sum(logprobs)
        if text:
            self._text.append(text)
            self._unsent_text.append(text)

    def _stream_response(self, reason: FinishReason | None) -> InferResponse | None:
        if reason is None and not (self._unsent_text if self._text_driven else self._unsent_ids):
            return None
        content = ResponseContent(
            text="".join(self._unsent_text),
            token_ids=self._unsent_ids,
            logprobs=self._unsent_logprobs,
            cum_logprob=self._cum_logprob,
            num_input_tokens=len(self._gen.prompt_token_ids),
            num_output_tokens=len(self._unsent_ids),
            finish_reason=reason,
        )
        self._unsent_ids, self._unsent_logprobs, self._unsent_text = [], [], []
        return self._builder.build(content, final=reason is not None)

    def _full_response(self, reason: FinishReason | None) -> InferResponse:
        gen = self._gen
        ids, text = self._all_ids, "".join(self._text)
        if not gen.exclude_input:
            ids = list(gen.prompt_token_ids) + ids
            if "text_output" in gen.outputs:
                text = self._prompt_text() + text
        content = ResponseContent(
            text=text,
            token_ids=ids,
            logprobs=self._unsent_logprobs,
            cum_logprob=self._cum_logprob,
            num_input_tokens=len(gen.prompt_token_ids),
            num_output_tokens=len(self._all_ids),
            finish_reason=reason,
        )
        return self._builder.build(content, final=True)

    def _prompt_text(self) -> str:
        if self._gen.prompt_text is not None:
            return self._gen.prompt_text
        assert self._tokenizer is not None, "translation refuses text_output without a tokenizer"
        return self._tokenizer.decode(self._gen.prompt_token_ids)
