"""Tour report pieces: a ``Section`` each area returns, rendered into one self-contained HTML
file (plots embedded as base64 PNGs, tables of numbers)."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TourContext:
    out: Path
    """folder for this section's runs and files"""
    quick: bool = False
    """the --quick budget (whole tour within 5 minutes on 2 cores)"""
    quiet: bool = True


@dataclass
class Section:
    title: str
    summary: str = ""
    figures: list[tuple[str, Any]] = field(default_factory=list)   # (caption, Figure or PNG path)
    tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    text: list[tuple[str, str]] = field(default_factory=list)       # (caption, preformatted text)
    seconds: float = 0.0
    error: str | None = None


def png_bytes(fig: Any) -> bytes:
    """A matplotlib Figure (closed afterwards) or a PNG path -> PNG bytes."""
    if isinstance(fig, (str, Path)):
        return Path(fig).read_bytes()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>(empty)</em></p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}section{margin:2em 0;padding:1em;border:1px solid #ddd;border-radius:8px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}figure{display:inline-block;margin:.5em}img{max-width:520px}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto}.err{color:#b00}.meta{color:#666;font-size:90%}"""


def render_html(sections: list[Section], title: str, meta: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>"]
    parts.append("<ul>" + "".join(f"<li><a href='#s{i}'>{html.escape(s.title)}</a>"
                                  f"{' — <span class=err>failed</span>' if s.error else ''}</li>"
                                  for i, s in enumerate(sections)) + "</ul>")
    for i, s in enumerate(sections):
        parts.append(f"<section id='s{i}'><h2>{html.escape(s.title)}</h2>")
        parts.append(f"<p class='meta'>{s.seconds:.1f} s</p>")
        if s.summary:
            parts.append(f"<p>{html.escape(s.summary)}</p>")
        if s.error:
            parts.append(f"<pre class='err'>{html.escape(s.error)}</pre>")
        for caption, fig in s.figures:
            data = base64.b64encode(png_bytes(fig)).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}"
                         f"</figcaption></figure>")
        for caption, rows in s.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>{_table(rows)}")
        for caption, text in s.text:
            parts.append(f"<h3>{html.escape(caption)}</h3><pre>{html.escape(text)}</pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
