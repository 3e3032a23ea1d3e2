"""Serving under stress (issue 18): a real ``frontier serve`` process on localhost (a tiny random kit LLaMA)
hit at once by a burst of concurrent clients (half streaming, half not), clients that disconnect mid-stream,
10 MB request bodies (with a Content-Length and chunked) and a slow reader; all of it for ``--rounds`` rounds.

Checked and counted: every request gets a proper answer (200 with a complete body: a finish_reason, usage or
``data: [DONE]``; 429 with OpenAI's ``rate_limit_exceeded`` error when the admission queue is full; 413 with
``request_too_large`` for the big bodies), transport errors and any other status are errors; after each round
the engine holds no running/waiting sequence and every KV block is back in the pool; the disconnected
streams were cancelled (the engine's counter) rather than decoded to the end; peak RSS of the server
process (``VmHWM``) and its RSS after each round (a leak would grow it); p50/p99 latency of the admitted
burst requests (end to end, the last byte).

    python benchmarks/serve_stress.py            # 500 clients x 2 rounds, 20 disconnects, 2 x 10 MB, 1 slow
    python benchmarks/serve_stress.py --quick    # 60 clients x 1 round
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from frontierkit.serve.process import start_server, stop_server

sys.path.insert(0, str(Path(__file__).parent))

PROMPTS = ["def main():", "import json\nprint(", "The quick brown", "What is the weather", "x = 1\n",
           "class Node:", "for i in range(", "return self."]
TEXT = ("The quick brown fox jumps over the lazy dog. def main():\n    return 0\nimport json\n"
        "print(json.dumps({'a': 1}))\nclass Node:\n    def __init__(self):\n        self.x = 1\n") * 40
BIG = 10 * 2**20


# -- the server ---------------------------------------------------------------------------------------------
def make_model_dir(out: Path, max_seq_len: int = 1024) -> Path:
    """A tiny random kit LLaMA + byte-level BPE tokenizer saved like ``frontier llm train`` saves them."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from frontierkit import models as registry
    from frontierkit.llm.model import Transformer
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainer=trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    torch.manual_seed(0)
    model = Transformer.from_name("tiny-llama", vocab_size=tok.get_vocab_size(), max_seq_len=max_seq_len,
                                  n_layers=2, d_model=64, d_ff=128).eval()
    registry.save(model, out)
    tok.save(str(out / "tokenizer.json"))
    return out


def rss_mib(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, MiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


# -- the clients ---------------------------------------------------------------------------------------------
def _error_code(raw: bytes) -> str:
    try:
        return json.loads(raw)["error"]["code"] or ""
    except (ValueError, KeyError, TypeError):
        return ""


async def burst_client(client, url: str, i: int, max_tokens: int) -> dict:
    """One completion (streamed for odd i): 'ok' (a complete answer), '429' (OpenAI rate-limit error), else 'error'."""
    body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens,
            "temperature": 0 if i % 4 < 2 else 0.8, "seed": i, "stream": bool(i % 2)}
    t0 = time.perf_counter()
    try:
        if body["stream"]:
            async with client.stream("POST", url + "/v1/completions", json=body) as r:
                raw = await r.aread()
            ok = r.status_code == 200 and raw.rstrip().endswith(b"data: [DONE]") and b'"finish_reason": "' in raw
        else:
            r = await client.post(url + "/v1/completions", json=body)
            raw = r.content
            ok = r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")
    except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
        return {"kind": "burst", "outcome": "error", "detail": f"{type(e).__name__}: {e}"[:200]}
    if r.status_code == 429 and _error_code(raw) == "rate_limit_exceeded":
        return {"kind": "burst", "outcome": "429", "status": 429}
    if ok:
        return {"kind": "burst", "outcome": "ok", "status": 200, "latency": time.perf_counter() - t0}
    return {"kind": "burst", "outcome": "error", "status": r.status_code, "detail": f"{r.status_code} {raw[:200]!r}"}


async def disconnecting_client(client, url: str, i: int, max_tokens: int, go: asyncio.Event) -> dict:
    """Stream a long completion, read its first token, wait for the burst to start, then hang up. The prompt is
    one whose greedy continuation does not reach <|endoftext|> early, so only a hang-up ends it."""
    body = {"prompt": PROMPTS[0], "max_tokens": max_tokens, "temperature": 0, "stream": True}
    try:
        async with client.stream("POST", url + "/v1/completions", json=body) as r:
            if r.status_code != 200:
                raw = await r.aread()
                return {"kind": "disconnect", "outcome": "429" if r.status_code == 429 else "error",
                        "detail": f"{r.status_code} {raw[:200]!r}"}
            async for line in r.aiter_lines():
                if line.startswith("data: {"):
                    break
            await go.wait()
            await asyncio.sleep(0.05 * (i % 5))
        return {"kind": "disconnect", "outcome": "ok"}          # leaving the block closes the connection
    except Exception as e:  # noqa: BLE001
        return {"kind": "disconnect", "outcome": "error", "detail": f"{type(e).__name__}: {e}"[:200]}


async def big_body_client(client, url: str, chunked: bool) -> dict:
    """A 10 MB JSON body, with a Content-Length or chunked; expects 413 ``request_too_large``."""
    payload = json.dumps({"prompt": "x" * BIG, "max_tokens": 1}).encode()

    async def chunks():
        for k in range(0, len(payload), 2**20):
            yield payload[k:k + 2**20]
    try:
        r = await client.post(url + "/v1/completions", content=chunks() if chunked else payload,
                              headers={"content-type": "application/json"})
    except Exception as e:  # noqa: BLE001
        return {"kind": "big-body", "outcome": "error", "detail": f"{type(e).__name__}: {e}"[:200]}
    ok = r.status_code == 413 and _error_code(r.content) == "request_too_large"
    return {"kind": "big-body", "outcome": "413" if ok else "error", "detail": f"{r.status_code} {r.content[:200]!r}"}


async def slow_client(url: str, max_tokens: int, rate: int = 4096) -> dict:
    """A streaming reader on a raw socket with a 4 KiB receive buffer that reads ``rate`` bytes/s."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    t0 = time.perf_counter()
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        body = json.dumps({"prompt": "def main():", "max_tokens": max_tokens, "temperature": 0, "stream": True,
                           "logprobs": 5}).encode()
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        raw = b""
        while chunk := await reader.read(rate // 8):
            raw += chunk
            await asyncio.sleep(1 / 8)
        writer.close()
    except Exception as e:  # noqa: BLE001
        return {"kind": "slow", "outcome": "error", "detail": f"{type(e).__name__}: {e}"[:200]}
    ok = raw.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in raw and b'"finish_reason": "' in raw
    return {"kind": "slow", "outcome": "ok" if ok else "error", "seconds": time.perf_counter() - t0,
            "bytes": len(raw), "detail": "" if ok else repr(raw[:200])}


async def health(client, url: str) -> dict:
    return (await client.get(url + "/health")).json()


async def settle(client, url: str, timeout: float = 120) -> dict:
    """/health once nothing runs or waits (or after ``timeout``)."""
    deadline = time.time() + timeout
    h = await health(client, url)
    while (h["running"] or h["waiting"]) and time.time() < deadline:
        await asyncio.sleep(0.2)
        h = await health(client, url)
    await asyncio.sleep(0.3)                      # one more engine step retires what finished last
    return await health(client, url)


async def stress_round(url: str, *, clients: int, disconnects: int, big_bodies: int, slow: int,
                       max_tokens: int = 16, long_tokens: int = 900) -> dict:
    """One round: disconnectors start and stream, then the burst, the big bodies and the slow reader go at
    once; the disconnectors hang up while the burst runs. Returns per-request results and /health after."""
    import httpx
    limits = httpx.Limits(max_connections=clients + disconnects + big_bodies + 8, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(600)) as client:
        before = (await health(client, url))["requests"]
        go = asyncio.Event()
        hangups = [asyncio.ensure_future(disconnecting_client(client, url, i, long_tokens, go))
                   for i in range(disconnects)]
        await asyncio.sleep(0.5 if disconnects else 0)
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(burst_client(client, url, i, max_tokens)) for i in range(clients)]
        tasks += [asyncio.ensure_future(big_body_client(client, url, chunked=bool(k % 2))) for k in range(big_bodies)]
        tasks += [asyncio.ensure_future(slow_client(url, max_tokens=100)) for _ in range(slow)]
        await asyncio.sleep(0.2)
        go.set()
        results = await asyncio.gather(*hangups, *tasks)
        wall = time.perf_counter() - t0
        after = await settle(client, url)
    delta = {k: after["requests"][k] - before.get(k, 0) for k in after["requests"]}
    return {"results": results, "health": after, "delta": delta, "wall_s": wall}


def summarize(rounds: list[dict], rss: list[dict], baseline: dict) -> dict:
    """The numbers of the results table: counts per outcome, latency percentiles, memory, leftovers."""
    res = [r for rd in rounds for r in rd["results"]]
    burst = [r for r in res if r["kind"] == "burst"]
    lat = sorted(r["latency"] for r in burst if r["outcome"] == "ok")
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else (lambda p: float("nan"))
    slow = [r for r in res if r["kind"] == "slow"]
    return {
        "rounds": len(rounds),
        "clients_per_round": len(burst) // max(len(rounds), 1),
        "requests": len(burst),
        "admitted": sum(r.get("status") == 200 for r in burst),
        "answered": sum(r["outcome"] == "ok" for r in burst),
        "rejected_429": sum(r["outcome"] == "429" for r in burst),
        "disconnected": sum(r["kind"] == "disconnect" and r["outcome"] == "ok" for r in res),
        "cancelled_by_engine": sum(rd["delta"]["cancelled"] for rd in rounds),
        "big_bodies_413": sum(r["outcome"] == "413" for r in res if r["kind"] == "big-body"),
        "big_bodies": sum(r["kind"] == "big-body" for r in res),
        "slow_answered": sum(r["outcome"] == "ok" for r in slow),
        "slow_seconds": round(max((r.get("seconds", 0.0) for r in slow), default=0.0), 2),
        "errors": sum(r["outcome"] == "error" for r in res),
        "error_details": [r.get("detail", "") for r in res if r["outcome"] == "error"][:10],
        "engine_failed": sum(rd["delta"]["failed"] for rd in rounds),
        "leftover_running": max(rd["health"]["running"] + rd["health"]["waiting"] for rd in rounds),
        "leftover_kv_blocks": max(rd["health"]["kv_blocks_used"] for rd in rounds),
        "p50_latency_s": round(q(0.50), 3),
        "p99_latency_s": round(q(0.99), 3),
        "burst_wall_s": [round(rd["wall_s"], 2) for rd in rounds],
        "rss_start_mib": round(baseline["VmRSS"], 1),
        "rss_after_round_mib": [round(m["VmRSS"], 1) for m in rss],
        "peak_rss_mib": round(max(m["VmHWM"] for m in rss), 1),
    }


def run(model_dir: Path, *, clients: int, disconnects: int, big_bodies: int, slow: int, rounds: int,
        server_args: tuple[str, ...] = ()) -> dict:
    """Start the server, warm it up, run ``rounds`` stress rounds, stop it; the summary."""
    import httpx
    proc, url = start_server(model_dir, *server_args)
    try:
        httpx.post(url + "/v1/completions", json={"prompt": "def", "max_tokens": 4}, timeout=120)
        baseline = rss_mib(proc.pid)
        done, rss = [], []
        for _ in range(rounds):
            done.append(asyncio.run(stress_round(url, clients=clients, disconnects=disconnects,
                                                 big_bodies=big_bodies, slow=slow)))
            rss.append(rss_mib(proc.pid))
        alive = proc.poll() is None and httpx.get(url + "/health", timeout=10).status_code == 200
    finally:
        stop_server(proc)
    return {**summarize(done, rss, baseline), "server_alive_after": alive}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="60 clients, 1 round")
    from bench_common import add_write_arg, meta, table, write
    args = add_write_arg(ap).parse_args()
    clients, rounds = (60, 1) if args.quick else (500, 2)
    server_args = ("--max-batch", "32", "--max-waiting", "256")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model_dir(Path(tmp) / "tiny-llama")
        s = run(model_dir, clients=clients, disconnects=20 if not args.quick else 5, big_bodies=2, slow=1,
                rounds=rounds, server_args=server_args)
    print(json.dumps(s, indent=2))
    command = "python benchmarks/serve_stress.py" + (" --quick" if args.quick else "")
    rows = [{"concurrent clients": s["clients_per_round"], "rounds": s["rounds"], "requests": s["requests"],
             "admitted": s["admitted"], "answered": s["answered"],
             "429": s["rejected_429"], "errors": s["errors"], "disconnected": s["disconnected"],
             "cancelled": s["cancelled_by_engine"], "10 MB → 413": f"{s['big_bodies_413']}/{s['big_bodies']}",
             "slow reader": f"{s['slow_answered']} answered ({s['slow_seconds']} s)",
             "peak RSS MiB": s["peak_rss_mib"], "p50 s": s["p50_latency_s"], "p99 s": s["p99_latency_s"]}]
    body = [f"Server: `frontier serve` (uvicorn, one process) on a tiny random kit LLaMA (2 layers, d=64, 1024-token "
            f"context), `{' '.join(server_args)}`, default `--max-body-bytes` (4 MiB). Each of {s['rounds']} round(s): "
            f"{clients} burst clients at once (half streamed, 16 tokens), {20 if not args.quick else 5} clients "
            f"that hang up mid-stream (900-token requests), two 10 MB bodies (Content-Length and chunked), one "
            f"reader of a 100-token stream with logprobs at 4 KiB/s through a 4 KiB socket buffer. Machine shared with other work (2 cores): latencies "
            f"are noisy.", "", *table(rows), "",
            f"- RSS of the server: {s['rss_start_mib']} MiB after warm-up, after each round "
            f"{s['rss_after_round_mib']} MiB, peak (VmHWM) {s['peak_rss_mib']} MiB",
            f"- after each round: {s['leftover_running']} sequences running or waiting, {s['leftover_kv_blocks']} "
            f"KV blocks in use; engine-failed sequences: {s['engine_failed']}; server alive: {s['server_alive_after']}",
            f"- burst wall time per round: {s['burst_wall_s']} s"]
    if s["error_details"]:
        body += ["", "Errors (first 10):", *(f"- `{d}`" for d in s["error_details"])]
    write("serve_stress", {**meta(command), **s}, body)


if __name__ == "__main__":
    main()
