"""`frontier tour` writes a self-contained report with embedded plots and tables."""
import base64
import re

import pytest

from frontierkit.tour import run_tour
from frontierkit.config import ConfigError


@pytest.mark.slow
def test_quick_tour_of_the_foundation_writes_a_self_contained_report(tmp_path):
    report = run_tour(tmp_path, ["train"], quick=True)
    html = report.read_text()
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pngs) >= 4
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "test acc" in html and "tokens/s" in html and "BPE tokenizer sample" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_unknown_tour_area_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown tour area"):
        run_tour(tmp_path, ["nope"])
