"""The multimodal tour section under --quick: a figure of held-out images with CLIP's top-3 labels and the
zero-shot / retrieval table, within the quick budget."""
import time

import pytest

from frontierkit.report import TourContext


@pytest.mark.slow
def test_quick_tour_section_has_the_top3_figure_and_the_zero_shot_table(tmp_path):
    from frontierkit.multimodal.demo import tour
    t0 = time.perf_counter()
    section = tour(TourContext(out=tmp_path, quick=True))
    assert time.perf_counter() - t0 < 120            # ~25 s alone on 2 cores; margin for a loaded machine
    assert section.figures and "top-3" in section.figures[0][0]
    rows = section.tables[0][1]
    assert {"zeroshot_color", "i2t_r@5"} <= set(rows[0]) and rows[0]["zeroshot_color"] > 1 / 6
