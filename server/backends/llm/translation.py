"""InferRequest -> GenerationRequest: prompt ids, sampling, streaming, outputs, for either contract."""

from __future__ import annotations

from dataclasses import dataclass

from server.backends.llm.contracts import DEFAULT_OUTPUTS, OUTPUT_NAMES, Contract, detect_contract
from server.backends.llm.tensor_inputs import RequestInputs
from server.backends.llm.tokenizer import TextTokenizer
from server.backends.llm.words import TokenSequences, check_vocab, tokenize_words, unpack_word_list
from server.engine.sampling_params import SamplingParams
from server.errors import InvalidInput, Unsupported
from server.types import InferRequest

_LOG_PROB_OUTPUTS = ("cum_log_probs", "output_log_probs")
_TEXT_OUTPUTS = ("text_output",)


@dataclass(frozen=True)
class ModelLimits:
    """What a request is checked against; the backend fills it in at load time."""

    vocab_size: int
    max_model_len: int
    """Prompt plus generated tokens may not exceed this."""
    decoupled: bool
    """Only decoupled models stream (TensorRT-LLM refuses `streaming` otherwise)."""
    exclude_input_in_output: bool = False
    """The model-level default of the request flag of the same name."""
    eos_token_ids: tuple[int, ...] = ()
    """The model's end tokens, used when a request names no end_id."""
    max_prompt_len: int | None = None
    """A separate prompt limit (a TensorRT engine's max_input_len); None: only max_model_len applies."""


@dataclass(frozen=True)
class GenerationRequest:
    """One request in engine terms; both backends consume it."""

    contract: Contract
    prompt_token_ids: tuple[int, ...]
    prompt_text: str | None
    """The `text_input` as sent (text contract); None for the token contract."""
    sampling: SamplingParams
    streaming: bool
    exclude_input: bool
    """Non-streamed outputs leave the prompt out (streamed deltas never carry it)."""
    stop_sequences: TokenSequences
    """Multi-token stop sequences, matched on generated ids outside the engine."""
    outputs: tuple[str, ...]
    """The output tensors each response carries."""
    end_token_ids: frozenset[int] = frozenset()
    """Tokens that end generation; one that does is left out of the outputs (as TensorRT-LLM does)."""


def stop_target(request: InferRequest) -> str | None:
    """The request id a `stop=true` request asks to stop, or None when this is a normal request.

    Raises:
        InvalidInput: `stop=true` without a request id.
    """
    if not RequestInputs(request).bool_value("stop"):
        return None
    if not request.id:
        raise InvalidInput(
            "stop=true needs the request id of the request to stop (send it as the request id)"
        )
    return request.id


def translate(
    request: InferRequest, tokenizer: TextTokenizer | None, limits: ModelLimits
) -> GenerationRequest:
    """Read and check every input; bad values raise InvalidInput naming them.

    Raises:
        InvalidInput: a malformed or out-of-range value.
        Unsupported: batch > 1, beam search, several return sequences, logits outputs.
    """
    inputs = RequestInputs(request)
    contract = detect_contract(request)
    _refuse_unsupported(inputs)
    prompt_ids, prompt_text = _prompt(contract, inputs, tokenizer, limits)
    streaming = bool(inputs.bool_value("stream", "streaming"))
    if streaming and not limits.decoupled:
        raise InvalidInput("streaming needs a decoupled model (model_transaction_policy { decoupled: true })")
    outputs = _outputs(request, contract, inputs)
    if tokenizer is None and any(n in outputs for n in _TEXT_OUTPUTS):
        raise Unsupported("this model has no tokenizer, so it cannot produce 'text_output'")
    sampling, stop_sequences = _sampling(contract, inputs, tokenizer, limits, outputs)
    _check_lengths(len(prompt_ids), sampling.max_tokens, limits)
    sampling.validate(limits.max_model_len)
    exclude = inputs.bool_value("exclude_input_in_output")
    end_ids = (sampling.end_id,) if sampling.end_id is not None else limits.eos_token_ids
    return GenerationRequest(
        contract=contract,
        prompt_token_ids=prompt_ids,
        prompt_text=prompt_text,
        sampling=sampling,
        streaming=streaming,
        exclude_input=limits.exclude_input_in_output if exclude is None else exclude,
        stop_sequences=stop_sequences,
        outputs=outputs,
        end_token_ids=frozenset() if sampling.ignore_eos else frozenset(end_ids),
    )


def _refuse_unsupported(inputs: RequestInputs) -> None:
    for name in ("beam_width", "num_return_sequences"):
        value = inputs.int_value(name)
        if value is not None and value > 1:
            raise Unsupported(
                f"{name}={value} is not supported: Hangar LLM models return one sequence (use 1)"
            )
    for name in ("return_context_logits", "return_generation_logits", "return_perf_metrics"):
        if inputs.bool_value(name):
            raise Unsupported(f"{name}=true is not supported by Hangar LLM models")


def _prompt(
    contract: Contract, inputs: RequestInputs, tokenizer: TextTokenizer | None, limits: ModelLimits
) -> tuple[tuple[int, ...], str | None]:
    if contract is Contract.TEXT:
        text = inputs.string("text_input")
        if not text:
            raise InvalidInput("text_input is empty: send a non-empty prompt")
        if tokenizer is None:
            raise Unsupported("this model has no tokenizer: send token ids as 'input_ids' (token contract)")
        ids = tuple(tokenizer.encode(text, add_special_tokens=True))
        if not ids:
            raise InvalidInput(f"text_input {text[:40]!r} tokenizes to no tokens")
        return ids, text
    raw = inputs.int_array("input_ids")
    assert raw is not None  # detect_contract saw it
    length = inputs.int_value("input_lengths")
    if length is not None:
        if not 0 <= length <= raw.shape[0]:
            raise InvalidInput(f"input_lengths {length} is outside [0, {raw.shape[0]}] (the input_ids sent)")
        raw = raw[:length]
    if raw.shape[0] == 0:
        raise InvalidInput("input_ids is empty: send at least one prompt token")
    ids = tuple(int(t) for t in raw.tolist())
    bad = next((i for i, t in enumerate(ids) if not 0 <= t < limits.vocab_size), None)
    if bad is not None:
        raise InvalidInput(
            f"input_ids[{bad}] = {ids[bad]} is outside the vocabulary [0, {limits.vocab_size})"
        )
    return ids, None


def _outputs(request: InferRequest, contract: Contract, inputs: RequestInputs) -> tuple[str, ...]:
    if request.requested_outputs:
        unknown = [n for n in request.requested_outputs if n not in OUTPUT_NAMES]
        if unknown:
            raise Unsupported(
                f"output(s) {unknown} are not produced by LLM models (known: {sorted(OUTPUT_NAMES)})"
            )
        return tuple(dict.fromkeys(request.requested_outputs))
    names = list(DEFAULT_OUTPUTS[contract])
    if inputs.bool_value("return_log_probs"):
        names += _LOG_PROB_OUTPUTS
    for flag in ("num_input_tokens", "num_output_tokens"):
        if inputs.bool_value(f"return_{flag}"):
            names.append(flag)
    return tuple(names)


def _top_k_top_p(inputs: RequestInputs) -> tuple[int, float]:
    """TensorRT-LLM semantics: with neither top-k nor top-p set (both 0) decoding is greedy."""
    top_k = inputs.int_value("top_k", "runtime_top_k") or 0
    top_p = inputs.float_value("top_p", "runtime_top_p")
    if top_k < 0:
        raise InvalidInput(f"top_k must be >= 0, got {top_k}")
    if top_p is not None and not 0.0 <= top_p <= 1.0:
        raise InvalidInput(f"top_p must be in (0, 1] (0 = unset), got {top_p}")
    if top_k == 0 and not top_p:
        return 1, 1.0
    return top_k, top_p or 1.0


def _sampling(
    contract: Contract,
    inputs: RequestInputs,
    tokenizer: TextTokenizer | None,
    limits: ModelLimits,
    outputs: tuple[str, ...],
) -> tuple[SamplingParams, TokenSequences]:
    names = ("max_tokens", "request_output_len")
    if contract is Contract.TOKEN:
        names = names[::-1]
    max_tokens = inputs.int_value(*names)
    if max_tokens is None:
        raise InvalidInput(f"'{names[0]}' is required: how many tokens to generate")
    top_k, top_p = _top_k_top_p(inputs)
    end_id = inputs.int_value("end_id")
    if end_id is not None and not 0 <= end_id < limits.vocab_size:
        raise InvalidInput(f"end_id {end_id} is outside the vocabulary [0, {limits.vocab_size})")
    stops = _word_lists("stop_words", inputs, tokenizer, limits)
    bad = _word_lists("bad_words", inputs, tokenizer, limits)
    temperature = inputs.float_value("temperature")
    seed = inputs.int_value("seed", "random_seed")
    sampling = SamplingParams(
        max_tokens=max_tokens,
        min_tokens=inputs.int_value("min_tokens", "min_length") or 0,
        temperature=1.0 if temperature is None else temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=_or(inputs.float_value("repetition_penalty"), 1.0),
        presence_penalty=_or(inputs.float_value("presence_penalty"), 0.0),
        frequency_penalty=_or(inputs.float_value("frequency_penalty"), 0.0),
        seed=seed,
        end_id=end_id,
        stop_token_ids=tuple(s[0] for s in stops if len(s) == 1),
        stop_strings=tuple(w for w in inputs.strings("stop_words") if w) if tokenizer is not None else (),
        bad_words=bad,
        logprobs=any(n in outputs for n in _LOG_PROB_OUTPUTS),
    )
    return sampling, tuple(s for s in stops if len(s) > 1)


def _word_lists(
    name: str, inputs: RequestInputs, tokenizer: TextTokenizer | None, limits: ModelLimits
) -> TokenSequences:
    """Token sequences from `<name>_list` ids; for bad words also the tokenized strings of `<name>`.

    Stop strings are matched on text instead (see detokenizer), so `stop_words` strings are not tokenized.
    """
    packed = inputs.int_array(f"{name}_list", item_ndim=2)
    sequences = unpack_word_list(f"{name}_list", packed) if packed is not None else ()
    check_vocab(f"{name}_list", sequences, limits.vocab_size)
    if name == "bad_words":
        sequences += tokenize_words(name, inputs.strings(name), tokenizer)
    elif inputs.strings(name) and tokenizer is None:
        raise InvalidInput(
            "input 'stop_words' holds strings but this model has no tokenizer; send stop_words_list"
        )
    return sequences


def _check_lengths(prompt_len: int, max_tokens: int, limits: ModelLimits) -> None:
    if limits.max_prompt_len is not None and prompt_len > limits.max_prompt_len:
        raise InvalidInput(
            f"the prompt has {prompt_len} tokens; this engine takes at most {limits.max_prompt_len} "
            f"(its max_input_len)"
        )
    if prompt_len >= limits.max_model_len:
        raise InvalidInput(
            f"the prompt has {prompt_len} tokens; the model's max_model_len is {limits.max_model_len}"
        )
    if max_tokens > 0 and prompt_len + max_tokens > limits.max_model_len:
        raise InvalidInput(
            f"max_tokens {max_tokens} plus the prompt's {prompt_len} tokens exceeds the model's "
            f"max_model_len {limits.max_model_len}"
        )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
