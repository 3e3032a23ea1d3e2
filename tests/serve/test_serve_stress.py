"""The server under stress (issue 18), a fast variant of benchmarks/serve_stress.py: a real `frontier serve`
process with a small admission queue, hit at once by 50 clients, a 10 MB body and a client that hangs up
mid-stream; and, in process, an engine step that raises. Oracle: HTTP status codes and OpenAI's error JSON
(`rate_limit_exceeded`, `request_too_large`, `server_error`), the engine's own counters and KV block pool."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import serve_stress  # noqa: E402


@pytest.fixture(scope="module")
def small_queue_server(serve_model_dir):
    """A server that decodes 4 sequences at once, queues 8 more and takes bodies up to 1 MiB."""
    proc, url = serve_stress.start_server(serve_model_dir, "--max-batch", "4", "--max-waiting", "8",
                                          "--max-body-bytes", str(2**20))
    yield proc, url
    serve_stress.stop_server(proc)


def test_50_clients_a_10mb_body_and_a_disconnect_all_answered_and_pages_freed(small_queue_server):
    """Every request gets 200 with a complete answer or 429 `rate_limit_exceeded` (none dropped, no 5xx), the
    10 MB body 413 `request_too_large`; the hung-up stream is cancelled by the engine; afterwards nothing runs or
    waits and every KV block is back in the pool; the server's memory grew by less than 50 MiB (the body was
    never read)."""
    proc, url = small_queue_server
    before = serve_stress.rss_mib(proc.pid)["VmRSS"]
    rd = asyncio.run(serve_stress.stress_round(url, clients=50, disconnects=1, big_bodies=1, slow=0,
                                               max_tokens=8, long_tokens=360))
    by = {}
    for r in rd["results"]:
        by.setdefault((r["kind"], r["outcome"]), []).append(r)
    assert not [r for r in rd["results"] if r["outcome"] == "error"], [r.get("detail") for r in rd["results"]]
    ok, rejected = len(by.get(("burst", "ok"), [])), len(by.get(("burst", "429"), []))
    # Admission is guaranteed only for the queue: the engine moves waiting -> running at its step boundaries, so
    # on a slow or busy machine the burst can arrive within one step and find just the 8 waiting places (one may
    # still hold the hung-up stream before its prefill). Anything beyond that depends on timing (CI saw 9).
    assert ok + rejected == 50 and ok >= 8 - 1 and rejected >= 1, (ok, rejected)
    assert len(by[("big-body", "413")]) == 1 and len(by[("disconnect", "ok")]) == 1
    d, h = rd["delta"], rd["health"]
    assert d["cancelled"] >= 1 and d["failed"] == 0
    assert d["rejected"] == rejected and d["submitted"] == d["finished"] + d["cancelled"] == ok + 1
    assert h["running"] == h["waiting"] == h["kv_blocks_used"] == 0
    assert serve_stress.rss_mib(proc.pid)["VmRSS"] - before < 50


def test_a_slow_reader_is_answered_and_does_not_hold_the_others(small_queue_server):
    """A client reading 4 KiB/s through a 4 KiB socket buffer still gets its whole stream; 8 clients sent at
    the same time finish first."""
    _, url = small_queue_server

    async def go():
        slow = asyncio.ensure_future(serve_stress.slow_client(url, max_tokens=60))
        import httpx
        async with httpx.AsyncClient(timeout=120) as client:
            fast = await asyncio.gather(*(serve_stress.burst_client(client, url, i, 8) for i in range(8)))
        return fast, slow.done(), await slow
    fast, slow_done_first, slow = asyncio.run(go())
    assert [r["outcome"] for r in fast] == ["ok"] * 8 and not slow_done_first
    assert slow["outcome"] == "ok", slow


def test_an_engine_step_that_raises_answers_500_and_the_engine_goes_on(serve_model_dir):
    """A forward that raises once: that request gets 500 `server_error` (streamed: an error event), its KV
    blocks return to the pool, and the next request is answered normally."""
    from fastapi.testclient import TestClient

    from frontierkit.serve.server import ServeState, create_app
    state = ServeState(serve_model_dir, max_batch=2, max_waiting=4)
    model, calls = state.engine.model, []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) in (1, 6):             # the first request's prefill; the third's (the second makes 4 calls)
            raise RuntimeError("simulated device error")
        return model(*a, **kw)
    state.engine.model = flaky
    with TestClient(create_app(state)) as c:
        r = c.post("/v1/completions", json={"prompt": "def", "max_tokens": 4})
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        assert "simulated device error" in r.json()["error"]["message"]
        r = c.post("/v1/completions", json={"prompt": "def", "max_tokens": 4})
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length"
        with c.stream("POST", "/v1/completions", json={"prompt": "def", "max_tokens": 4, "stream": True}) as s:
            text = s.read().decode()
        assert '"server_error"' in text and "simulated device error" in text
        h = c.get("/health").json()
    assert h["kv_blocks_used"] == 0 and h["requests"]["failed"] == 2 and h["requests"]["finished"] == 1
