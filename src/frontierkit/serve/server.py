"""An OpenAI-compatible HTTP server (FastAPI + uvicorn) over the continuous-batching engine
(Orca, Yu et al. 2022; PagedAttention, Kwon et al. 2023): ``GET /health``, ``GET /v1/models``,
``POST /v1/completions`` and ``POST /v1/chat/completions`` as the official ``openai`` client calls
them (``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``, ``n``, ``logprobs`` /
``top_logprobs``, ``stream`` with SSE chunks, ``data: [DONE]`` and ``stream_options.include_usage``,
``tools`` / ``tool_choice`` -> ``tool_calls``). Errors use OpenAI's ``{"error": {...}}`` shape.

Limits that keep memory bounded under abuse (docs/reliability.md): a request body over ``max_body_bytes``
is refused with 413 before it is read (by its Content-Length, or while a chunked body streams in); more than
``max_waiting`` queued requests get 429; a client that disconnects cancels its sequences, whose KV blocks
return to the pool at the next engine step; a slow reader is throttled by the transport (uvicorn pauses the
response writes), and its sequence still finishes (a max_tokens bound).
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError, require_extra
from .chat_template import END, check_messages, forced_prefix, parse_tool_calls, render_default, render_jinja
from .commands import MAX_BODY_BYTES
from .scheduler import Engine, QueueFull, SamplingParams, Sequence, Step

Request = require_extra("starlette.requests", "serve").Request


class ApiError(Exception):
    """A request error answered with OpenAI's error JSON and an HTTP status."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# -- the model's tokenizer -------------------------------------------------------------------------------
@dataclass
class ServeTokenizer:
    """A ``tokenizers`` tokenizer (``tokenizer.json``, as the llm area saves it) + what the folder says
    about ends of sequence and the chat template."""
    tok: Any
    stop_ids: tuple[int, ...]
    chat_template: str | None
    special: dict[str, str]

    @classmethod
    def load(cls, folder: Path) -> "ServeTokenizer":
        tokenizers = require_extra("tokenizers", "llm")
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise CheckpointError(f"{folder} has no tokenizer.json; train with `frontier llm train` or copy the "
                                  f"tokenizer next to the weights")
        tok = tokenizers.Tokenizer.from_file(str(path))
        cfg = _read_json(folder / "tokenizer_config.json")
        special = {k: _token_text(cfg.get(k)) for k in ("bos_token", "eos_token") if cfg.get(k)}
        stops = {tok.token_to_id("<|endoftext|>"), tok.token_to_id(special.get("eos_token", ""))}
        eos = _read_json(folder / "config.json").get("eos_token_id")
        stops.update(eos if isinstance(eos, list) else [eos])
        return cls(tok, tuple(sorted(i for i in stops if isinstance(i, int))), cfg.get("chat_template"), special)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False)

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> tuple[str, str]:
        """(prompt text, stop string of the template or "")."""
        if isinstance(self.chat_template, str):
            return render_jinja(self.chat_template, messages, tools, self.special), ""
        return render_default(messages, tools), END


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _token_text(t: Any) -> str:
    return t.get("content", "") if isinstance(t, dict) else str(t)


# -- incremental detokenisation with stop strings --------------------------------------------------------
class Detokenizer:
    """Text of the generated ids so far; holds back what could still become a stop string and cuts the
    text at the first stop string (which then ends the sequence)."""

    def __init__(self, tok: ServeTokenizer, stops: list[str], prefix: str = ""):
        self.tok, self.stops, self.ids = tok, [s for s in stops if s], []
        self.prefix, self.text, self.sent, self.stopped = prefix, prefix, 0, False

    def push(self, token: int) -> tuple[str, bool]:
        """Add a token; return (new text safe to send, whether a stop string was hit)."""
        self.ids.append(token)
        text = self.prefix + self.tok.decode(self.ids)
        if text.endswith("\ufffd"):                 # maybe an incomplete UTF-8 character: send it later
            self.text = text
            return "", False
        for s in self.stops:
            i = text.find(s, max(0, self.sent - len(s)))
            if i >= 0:
                text, self.stopped = text[:i], True
        self.text = text
        hold = 0 if self.stopped else max((k for s in self.stops for k in range(1, len(s))
                                           if text.endswith(s[:k])), default=0)
        delta = text[self.sent:len(text) - hold]
        self.sent += len(delta)
        return delta, self.stopped

    def flush(self) -> str:
        delta = self.text[self.sent:]
        self.sent = len(self.text)
        return delta


# -- the engine, as seen from asyncio ----------------------------------------------------------------------
@dataclass
class Choice:
    seq: Sequence
    detok: Detokenizer
    queue: asyncio.Queue
    steps: list[Step]


class ServeState:
    """The model, its tokenizer and the engine thread behind the HTTP app."""

    def __init__(self, model_dir: str | Path, *, model_id: str | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES, **engine_kw: Any):
        from .. import models
        self.max_body_bytes = max_body_bytes
        loaded = models.open_model(model_dir, tags="lm", what="frontier serve")
        self.model = loaded.model
        self.tokenizer = ServeTokenizer.load(loaded.path)
        self.model_id = model_id or Path(model_dir).resolve().name
        self.engine = Engine(self.model, **engine_kw)
        self.created = int(time.time())

    def submit(self, prompt: list[int], params: list[SamplingParams], stops: list[str],
               prefix: str = "") -> list[Choice]:
        """Queue one sequence per choice; their tokens arrive on each choice's asyncio queue."""
        loop = asyncio.get_running_loop()
        choices = []
        for p in params:
            q: asyncio.Queue = asyncio.Queue()
            ch = Choice(None, Detokenizer(self.tokenizer, stops, prefix), q, [])  # type: ignore[arg-type]

            def on_token(seq: Sequence, step: Step, ch: Choice = ch) -> bool:
                eos = step.token in seq.params.stop_token_ids          # ends the text, adds none
                delta, stopped = ("", False) if eos else ch.detok.push(step.token)
                ch.steps.append(step)
                loop.call_soon_threadsafe(ch.queue.put_nowait, ("token", delta, step))
                return stopped

            def on_finish(seq: Sequence, ch: Choice = ch) -> None:
                loop.call_soon_threadsafe(ch.queue.put_nowait, ("finish", ch.detok.flush(), None))

            ch.seq = Sequence(list(prompt), p, on_token=on_token, on_finish=on_finish)
            choices.append(ch)
        try:
            for ch in choices:
                self.engine.submit(ch.seq)
        except QueueFull as e:
            for ch in choices:
                ch.seq.cancel()
            raise ApiError(429, f"the server is busy ({e}); retry later", "rate_limit_exceeded",
                           code="rate_limit_exceeded") from None
        return choices


# -- request parsing -------------------------------------------------------------------------------------
def _get(body: dict, name: str, types: type | tuple, default: Any = None, check=None, what: str = "") -> Any:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ApiError(400, f"'{name}' must be {what or types}, got {v!r}", param=name)
    if not isinstance(v, types) or (check is not None and not check(v)):
        raise ApiError(400, f"'{name}' must be {what or types}, got {v!r}", param=name)
    return v


def sampling_params(body: dict, state: ServeState, prompt_len: int,
                    chat: bool) -> tuple[list[SamplingParams], list[str]]:
    """OpenAI sampling fields -> one SamplingParams per choice (seed + i for choice i) and stop strings."""
    room = state.engine.max_len - prompt_len
    max_tokens = _get(body, "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens",
                      int, None if chat else 16, lambda v: v >= 1, "an integer >= 1")
    max_tokens = min(max_tokens or room, room)
    temperature = float(_get(body, "temperature", (int, float), 1.0, lambda v: 0 <= v <= 2, "a number in [0, 2]"))
    top_p = float(_get(body, "top_p", (int, float), 1.0, lambda v: 0 < v <= 1, "a number in (0, 1]"))
    n = _get(body, "n", int, 1, lambda v: 1 <= v <= 16, "an integer in [1, 16]")
    seed = _get(body, "seed", int, None, what="an integer")
    if chat:
        top = _get(body, "top_logprobs", int, 0, lambda v: 0 <= v <= 20, "an integer in [0, 20]")
        want = _get(body, "logprobs", bool, False, what="a boolean")
        top = top if want else 0
    else:
        top = _get(body, "logprobs", int, 0, lambda v: 0 <= v <= 5, "an integer in [0, 5]")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > 4:
        raise ApiError(400, f"'stop' must be a string or a list of up to 4 strings, got {stop!r}", param="stop")
    params = [SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                             seed=None if seed is None else seed + i, stop_token_ids=state.tokenizer.stop_ids,
                             top_logprobs=top) for i in range(n)]
    return params, stops


def _check_prompt(state: ServeState, ids: list[int]) -> None:
    if not ids:
        raise ApiError(400, "the prompt is empty after tokenisation; send some text", param="prompt")
    if len(ids) + 1 > state.engine.max_len:
        raise ApiError(400, f"this model's maximum context length is {state.engine.max_len} tokens, but the "
                            f"prompt has {len(ids)} tokens; shorten it", param="messages",
                       code="context_length_exceeded")


def _check_model(state: ServeState, body: dict) -> None:
    model = body.get("model")
    if model is not None and model != state.model_id:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {state.model_id!r}",
                       param="model", code="model_not_found")


# -- responses ---------------------------------------------------------------------------------------------
def _tok_str(state: ServeState, t: int) -> str:
    return state.tokenizer.decode([t])


def completion_logprobs(state: ServeState, steps: list[Step], start: int = 0) -> dict[str, Any]:
    """Legacy completions ``logprobs``: tokens, token_logprobs, top_logprobs, text_offset."""
    toks = [_tok_str(state, s.token) for s in steps]
    offsets, o = [], start
    for t in toks:
        offsets.append(o)
        o += len(t)
    return {"tokens": toks, "token_logprobs": [s.logprob for s in steps],
            "top_logprobs": [{_tok_str(state, i): lp for i, lp in s.top} for s in steps], "text_offset": offsets}


def chat_logprobs(state: ServeState, steps: list[Step]) -> dict[str, Any]:
    """Chat ``logprobs.content``: token, logprob, bytes and top_logprobs per token."""
    def entry(t: int, lp: float) -> dict[str, Any]:
        s = _tok_str(state, t)
        return {"token": s, "logprob": lp, "bytes": list(s.encode())}
    return {"content": [{**entry(s.token, s.logprob), "top_logprobs": [entry(i, lp) for i, lp in s.top]}
                        for s in steps], "refusal": None}


def usage(prompt_len: int, choices: list[Choice]) -> dict[str, int]:
    done = sum(len(c.seq.out) for c in choices)
    return {"prompt_tokens": prompt_len, "completion_tokens": done, "total_tokens": prompt_len + done}


def sse(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


# -- the app ---------------------------------------------------------------------------------------------------
def create_app(state: ServeState):
    """The FastAPI app over ``state`` (its engine thread starts with the app and stops with it)."""
    fastapi = require_extra("fastapi", "serve")
    from contextlib import asynccontextmanager

    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @asynccontextmanager
    async def lifespan(app):
        state.engine.start()
        try:
            yield
        finally:
            state.engine.close()

    app = fastapi.FastAPI(title="frontierkit serve", lifespan=lifespan)

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e):
        return JSONResponse(ApiError(e.status_code, str(e.detail)).body(), status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e):
        return JSONResponse(ApiError(400, f"invalid request: {e.errors()[:1]}").body(), status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(request, e):
        return JSONResponse(ApiError(500, f"internal error: {type(e).__name__}: {e}", "server_error").body(),
                            status_code=500)

    async def read_body(request) -> dict:
        try:
            body = json.loads(await read_limited(request, state.max_body_bytes))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the request body is not valid JSON ({e})") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        _check_model(state, body)
        return body

    @app.get("/health")
    async def health():
        eng = state.engine
        return {"status": "ok", "running": len(eng.running), "waiting": len(eng.waiting),
                "kv_blocks_used": eng.pool.used, "kv_blocks_total": eng.pool.num_blocks, "requests": dict(eng.stats)}

    class SequenceStream(StreamingResponse):
        """An SSE response that cancels its sequences however it ends: done, client gone (Starlette cancels
        the stream on disconnect), a failed write; so a dropped client's KV blocks are freed at once."""

        def __init__(self, content: Any, choices: list[Choice]):
            super().__init__(content, media_type="text/event-stream")
            self.choices = choices

        async def __call__(self, scope, receive, send) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                for ch in self.choices:
                    ch.seq.cancel()
                await self.body_iterator.aclose()

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [{"id": state.model_id, "object": "model", "created": state.created,
                                            "owned_by": "frontierkit"}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await read_body(request)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, str):
            ids = state.tokenizer.encode(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                         for t in prompt):
            ids, prompt = list(prompt), state.tokenizer.decode(list(prompt))
            vocab = state.model.cfg.vocab_size
            if not all(0 <= t < vocab for t in ids):
                raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        else:
            raise ApiError(400, "'prompt' must be a string, a one-string list or a list of token ids",
                           param="prompt")
        _check_prompt(state, ids)
        params, stops = sampling_params(body, state, len(ids), chat=False)
        echo = bool(body.get("echo", False))
        choices = state.submit(ids, params, stops)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "object": "text_completion", "created": created, "model": state.model_id}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

            def chunk(i: int, text: str, reason: str | None, steps: list[Step]) -> dict:
                lp = completion_logprobs(state, steps) if params[0].top_logprobs and steps else None
                return {**head, "choices": [{"index": i, "text": text, "logprobs": lp, "finish_reason": reason}]}

            async def gen():
                try:
                    if echo:
                        for i in range(len(choices)):
                            yield sse(chunk(i, prompt, None, []))
                    async for i, kind, delta, step in _merge(choices):
                        if kind == "token":
                            if delta:
                                yield sse(chunk(i, delta, None, [step]))
                        else:
                            yield sse(chunk(i, delta, choices[i].seq.finish_reason, []))
                    if include_usage:
                        yield sse({**head, "choices": [], "usage": usage(len(ids), choices)})
                    yield "data: [DONE]\n\n"
                except ApiError as e:          # the engine failed this request's step: say so, in OpenAI's shape
                    yield sse(e.body())
            return SequenceStream(gen(), choices)
        await _wait_all(request, choices)
        out = []
        for i, ch in enumerate(choices):
            text = (prompt if echo else "") + ch.detok.text
            lp = completion_logprobs(state, ch.steps) if params[0].top_logprobs else None
            out.append({"index": i, "text": text, "logprobs": lp, "finish_reason": ch.seq.finish_reason})
        return {**head, "choices": out, "usage": usage(len(ids), choices)}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request)
        try:
            messages = check_messages(body.get("messages"))
            tools = body.get("tools") or None
            if tools is not None and (not isinstance(tools, list) or not all(
                    isinstance(t, dict) and isinstance(t.get("function"), dict) for t in tools)):
                raise ConfigError("'tools' must be a list of {\"type\": \"function\", \"function\": {...}}")
            tool_choice = body.get("tool_choice", "auto")
            if tool_choice == "none":
                tools = None
            prefix = forced_prefix(tool_choice, tools)
            text, end = state.tokenizer.render(messages, tools)
        except ConfigError as e:
            raise ApiError(400, str(e), param="messages") from None
        ids = state.tokenizer.encode(text + prefix)
        _check_prompt(state, ids)
        params, stops = sampling_params(body, state, len(ids), chat=True)
        choices = state.submit(ids, params, stops + ([end] if end else []), prefix)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "object": "chat.completion", "created": created, "model": state.model_id,
                "system_fingerprint": "frontierkit"}
        want_lp = bool(body.get("logprobs"))

        def final(ch: Choice) -> tuple[dict, str]:
            content, calls = parse_tool_calls(ch.detok.text) if tools else (ch.detok.text, [])
            reason = "tool_calls" if calls else ch.seq.finish_reason
            msg = {"role": "assistant", "content": content, "refusal": None}
            if calls:
                msg["tool_calls"] = calls
            return msg, reason

        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chead = {**head, "object": "chat.completion.chunk"}

            def chunk(i: int, delta: dict, reason: str | None, steps: list[Step]) -> dict:
                lp = chat_logprobs(state, steps) if want_lp and steps else None
                return {**chead, "choices": [{"index": i, "delta": delta, "logprobs": lp, "finish_reason": reason}]}

            async def gen():
                try:
                    for i in range(len(choices)):
                        yield sse(chunk(i, {"role": "assistant", "content": ""}, None, []))
                    async for i, kind, delta, step in _merge(choices):
                        if kind == "token":
                            if not tools and (delta or want_lp):
                                yield sse(chunk(i, {"content": delta}, None, [step]))
                            continue
                        if tools:          # tool calls are parsed from the whole answer, sent at its end
                            msg, reason = final(choices[i])
                            d: dict[str, Any] = {"content": msg["content"]} if msg["content"] else {}
                            if msg.get("tool_calls"):
                                d["tool_calls"] = [{"index": j, **c} for j, c in enumerate(msg["tool_calls"])]
                            yield sse(chunk(i, d, reason, choices[i].steps if want_lp else []))
                        else:
                            yield sse(chunk(i, {"content": delta} if delta else {}, choices[i].seq.finish_reason, []))
                    if include_usage:
                        yield sse({**chead, "choices": [], "usage": usage(len(ids), choices)})
                    yield "data: [DONE]\n\n"
                except ApiError as e:          # the engine failed this request's step: say so, in OpenAI's shape
                    yield sse(e.body())
            return SequenceStream(gen(), choices)
        await _wait_all(request, choices)
        out = []
        for i, ch in enumerate(choices):
            msg, reason = final(ch)
            out.append({"index": i, "message": msg, "logprobs": chat_logprobs(state, ch.steps) if want_lp else None,
                        "finish_reason": reason})
        return {**head, "choices": out, "usage": usage(len(ids), choices)}

    return app


def _raise_if_failed(ch: Choice) -> None:
    """A sequence that ended with ``finish_reason="error"`` (its engine step raised) is answered with a 500."""
    if ch.seq.finish_reason == "error":
        raise ApiError(500, f"generation failed: {ch.seq.error}; the server goes on serving other requests",
                       "server_error", code="generation_failed")


async def read_limited(request, limit: int) -> bytes:
    """The request body, refused with 413 when over ``limit`` bytes: at once by its Content-Length, else
    (chunked) as soon as the streamed bytes pass the limit; memory never holds more than ``limit``."""
    def too_large(size: str) -> ApiError:
        return ApiError(413, f"the request body is {size} bytes; this server accepts at most {limit} "
                             f"(--max-body-bytes)", code="request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(length)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"more than {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


async def _merge(choices: list[Choice]):
    """(choice index, "token"/"finish", text delta, step) events of all choices until all finished."""
    pending = {i: asyncio.ensure_future(ch.queue.get()) for i, ch in enumerate(choices)}
    try:
        while pending:
            done, _ = await asyncio.wait(pending.values(), return_when=asyncio.FIRST_COMPLETED)
            for i in [i for i, f in pending.items() if f in done]:
                kind, delta, step = pending[i].result()
                if kind == "finish":
                    _raise_if_failed(choices[i])
                yield i, kind, delta, step
                if kind == "finish":
                    del pending[i]
                else:
                    pending[i] = asyncio.ensure_future(choices[i].queue.get())
    finally:
        for f in pending.values():
            f.cancel()


async def _wait_all(request, choices: list[Choice]) -> None:
    """Wait for every choice to finish; cancel them all if the client disconnects meanwhile."""
    async def finished(ch: Choice) -> None:
        while (await ch.queue.get())[0] != "finish":
            pass
        _raise_if_failed(ch)
    task = asyncio.ensure_future(asyncio.gather(*(finished(ch) for ch in choices)))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.25)
            if not task.done() and await request.is_disconnected():
                raise asyncio.CancelledError
        task.result()                          # re-raises a failed sequence's ApiError
    finally:
        if not task.done():
            task.cancel()
            for ch in choices:
                ch.seq.cancel()


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "warning",
          **engine_kw: Any) -> None:
    """Load the model and serve it until interrupted (``frontier serve --model DIR``)."""
    uvicorn = require_extra("uvicorn", "serve")
    state = ServeState(model_dir, **engine_kw)
    print(json.dumps({"serving": state.model_id, "url": f"http://{host}:{port}/v1",
                      "max_batch": state.engine.max_batch, "kv_blocks": state.engine.pool.num_blocks,
                      "max_waiting": state.engine.max_waiting, "max_body_bytes": state.max_body_bytes}), flush=True)
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)
