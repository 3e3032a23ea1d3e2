"""The multimodal tour section under --quick: a figure of held-out images with CLIP's top-3 labels and the
zero-shot / retrieval table (its colour column above chance)."""
import pytest

from frontierkit.report import TourContext


@pytest.mark.slow
def test_quick_tour_section_has_the_top3_figure_and_the_zero_shot_table(tmp_path):
    from frontierkit.multimodal.demo import tour
    section = tour(TourContext(out=tmp_path, quick=True))       # ~25 s on 2 cores (speed is not asserted here)
    assert section.figures and "top-3" in section.figures[0][0]
    rows = section.tables[0][1]
    assert {"zeroshot_color", "i2t_r@5"} <= set(rows[0]) and rows[0]["zeroshot_color"] > 1 / 6
