"""A local document store for the ``search_docs`` tool: the docstrings of pycorpus (the Python standard
library's modules, classes and functions), ranked with BM25 (Robertson & Zaragoza 2009, eq. 3.15;
k1 = 1.5, b = 0.75)."""
from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from .tools import tool

_WORD = re.compile(r"[a-z][a-z0-9_]+")


@dataclass(frozen=True)
class Doc:
    name: str
    """dotted name, e.g. ``json.dumps``"""
    text: str


def docstrings(max_files: int = 400) -> list[Doc]:
    """Module, class and function docstrings of the first ``max_files`` top-level stdlib modules and packages
    (the files pycorpus reads; cached as JSON)."""
    import sysconfig
    from pathlib import Path

    from ..data import cache_dir
    path = cache_dir() / f"agents-docstore-{max_files}.json"
    if path.exists():
        try:
            return [Doc(**d) for d in json.loads(path.read_text())]
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)
    docs: list[Doc] = []
    root = Path(sysconfig.get_paths()["stdlib"])           # pycorpus's source: the running stdlib
    files = sorted([*root.glob("*.py"), *root.glob("*/__init__.py")])[:max_files]
    for p in files:
        mod = p.parent.name if p.name == "__init__.py" else p.stem
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        if (d := ast.get_docstring(tree)):
            docs.append(Doc(mod, d[:1500]))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if (d := ast.get_docstring(node)):
                    docs.append(Doc(f"{mod}.{node.name}", d[:1500]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([d.__dict__ for d in docs]))
    return docs


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 over a list of documents."""

    def __init__(self, docs: list[Doc], k1: float = 1.5, b: float = 0.75):
        self.docs, self.k1, self.b = docs, k1, b
        self.tf = [Counter(words(d.name.replace(".", " ") + " " + d.text)) for d in docs]
        self.len = [sum(t.values()) for t in self.tf]
        self.avg = sum(self.len) / max(len(self.len), 1)
        df = Counter(w for t in self.tf for w in t)
        n = len(docs)
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}

    def score(self, query: list[str], i: int) -> float:
        """BM25(q, d) = sum_w idf(w) tf (k1+1) / (tf + k1 (1 - b + b |d|/avgdl))."""
        tf, norm = self.tf[i], self.k1 * (1 - self.b + self.b * self.len[i] / self.avg)
        return sum(self.idf.get(w, 0.0) * tf[w] * (self.k1 + 1) / (tf[w] + norm) for w in query if w in tf)

    def search(self, query: str, k: int = 3) -> list[tuple[Doc, float]]:
        q = words(query)
        scored = sorted(((self.score(q, i), i) for i in range(len(self.docs))), key=lambda s: (-s[0], s[1]))
        return [(self.docs[i], s) for s, i in scored[:k] if s > 0]


@lru_cache(maxsize=1)
def default_index() -> BM25:
    return BM25(docstrings())


@tool
def search_docs(query: str, k: int = 3) -> str:
    """Search the Python standard library's documentation (docstrings) and return the best matches.

    Args:
        query: what to look for, e.g. "parse a JSON string"
        k: how many results (1-10)
    """
    hits = default_index().search(query, max(1, min(k, 10)))
    if not hits:
        return "no matching documentation"
    return "\n\n".join(f"{d.name}: {d.text[:400]}" for d, _ in hits)
