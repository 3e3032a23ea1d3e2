"""A test-only OpenAI-compatible endpoint (FastAPI + uvicorn in a thread): ``/v1/chat/completions`` answers
from a script (a list of assistant messages, or a function of the request) and records every request."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

from fastapi import FastAPI, Request

Script = list[dict[str, Any]] | Callable[[dict[str, Any]], dict[str, Any]]


def call(name: str, args: str, i: int = 0) -> dict[str, Any]:
    """An assistant tool call in OpenAI's message shape."""
    return {"id": f"call_{name}_{i}", "type": "function", "function": {"name": name, "arguments": args}}


class FakeOpenAI:
    def __init__(self, script: Script):
        import uvicorn
        self.script, self.requests, self.i = script, [], 0
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.requests.append(body)
            if callable(self.script):
                msg = self.script(body)
            else:
                msg = self.script[min(self.i, len(self.script) - 1)]
            self.i += 1
            msg = {"role": "assistant", "content": None, **msg}
            return {"id": f"chatcmpl-{self.i}", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": msg,
                                 "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("fake endpoint did not start")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
