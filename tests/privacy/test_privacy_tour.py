"""The privacy tour section (quick): the ε-vs-steps and FedAvg/FedProx figures, the DP accuracy table, and an
encrypted round trip whose decrypted predictions equal the plaintext ones."""
import re

import pytest

from frontierkit.report import TourContext


@pytest.mark.slow
def test_quick_privacy_tour_section_shows_curves_tables_and_an_encrypted_round_trip(tmp_path):
    from frontierkit.privacy.demo import tour
    section = tour(TourContext(out=tmp_path, quick=True, quiet=True))
    assert len(section.figures) == 2 and len(section.tables) >= 2
    dp_rows = section.tables[0][1]
    assert {"epsilon", "test_acc"} <= set(dp_rows[0]) and any(r["epsilon"] == "inf" for r in dp_rows)
    assert {r["algorithm"] for r in section.tables[1][1]} == {"fedavg", "fedprox"}
    text = section.text[0][1]
    if "not installed" not in text:
        plain, decrypted = re.search(r"plaintext predictions (\[.*?\]), decrypted (\[.*?\])", text).groups()
        assert plain == decrypted
