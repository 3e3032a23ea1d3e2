"""search_docs: BM25 (Robertson & Zaragoza 2009, eq. 3.15) over pycorpus docstrings; scores checked against a
direct evaluation of the formula (tolerance 1e-12) and retrieval on the real store."""
from __future__ import annotations

import math

import pytest

from frontierkit.agents.docstore import BM25, Doc, search_docs

DOCS = [Doc("json.dumps", "Serialize obj to a JSON formatted str."),
        Doc("math.gcd", "Greatest common divisor of the integers."),
        Doc("copy.copy", "Shallow copy operation on arbitrary Python objects."),
        Doc("copy.deepcopy", "Deep copy operation on arbitrary Python objects.")]


def test_bm25_score_matches_formula():
    idx = BM25(DOCS)
    q = ["copy", "objects"]
    i = 2
    n, avg = len(DOCS), idx.avg
    expect = 0.0
    for w in q:
        df = sum(w in t for t in idx.tf)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        tf = idx.tf[i][w]
        expect += idf * tf * 2.5 / (tf + 1.5 * (1 - 0.75 + 0.75 * idx.len[i] / avg))
    assert idx.score(q, i) == pytest.approx(expect, abs=1e-12)
    assert [d.name for d, _ in idx.search("greatest common divisor")] == ["math.gcd"]
    assert idx.search("zebra") == []


@pytest.mark.slow
def test_search_docs_on_stdlib_docstrings():
    out = search_docs.invoke({"query": "serialize object to JSON formatted string", "k": 3})
    assert out.split(":")[0] in ("json.dump", "json.dumps")
    assert search_docs.invoke({"query": "shallow copy", "k": 1}).startswith("copy.copy:")
