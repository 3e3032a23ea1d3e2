"""Every number README and docs quote comes from a committed benchmarks/results file (issue 19, item 7).

An explicit map: (document, results file, value read from it, how the document writes it). The test
formats the value as the document should quote it and asserts the document says exactly that, so a
re-run benchmark (``python benchmarks/<name>.py --write``) whose numbers moved fails here until the
docs are updated. The benchmark table's dates must match the results files too.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def results(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / f"{name}.json").read_text())


def row(rows: list[dict], **match: Any) -> dict:
    return next(r for r in rows if all(r.get(k) == v for k, v in match.items()))


def llm_peak(impl: str) -> Callable[[dict], float]:
    return lambda d: row(d["rows"], implementation=impl)["%_matmul_peak"]


EAGER, HF, COMPILED = ("frontierkit Transformer (eager)", "transformers LlamaForCausalLM (sdpa)",
                       "frontierkit Transformer (torch.compile)")
LIB = "eval return (mean ± std over seeds)"
TEXT_ONLY, VAE_ROW = "text-only, CFG s=3, DPM-Solver++ 20", "VAE reconstructions of the same images (latent ceiling)"
REAL_ROW, DIGITS_S1 = "real held-out images (ceiling)", "class-conditional CFG s=1, DPM-Solver++ 20"
CN_OUTLINE, CN_MASK = "ControlNet (outline) + text, CFG s=3", "ControlNet (mask) + text, CFG s=3"

# (document, results file, value, template the document must contain)
CHECKS: list[tuple[str, str, Callable[[dict], Any], str]] = [
    ("README.md", "llm_train", llm_peak(EAGER), "ours at {:.1f}%"),
    ("README.md", "llm_train", llm_peak(HF), "transformers at {:.1f}% of measured matmul peak"),
    ("README.md", "llm_train", llm_peak(COMPILED), "(compiled {:.1f}%)"),
    ("README.md", "llm_train", lambda d: d["summary"]["eager_speedup"], "| {:.2f}× (1.035× with `--compile`)"),
    ("README.md", "llm_train", lambda d: row(d["rows"], implementation=COMPILED)["speedup_vs_transformers"],
     "({:.3f}× with `--compile`)"),
    ("docs/llm.md", "llm_train", llm_peak(EAGER), "at **{:.1f} % (ours)"),
    ("docs/llm.md", "llm_train", llm_peak(HF), "{:.1f} % (transformers)"),
    ("docs/llm.md", "llm_train", llm_peak(COMPILED), "{:.1f} % (ours compiled)"),
    ("README.md", "llm_decode", lambda d: d["summary"]["speedup tiny recipe LLaMA (1.3M)"], "| {:.2f}× (1.3M model)"),
    ("README.md", "llm_decode", lambda d: d["summary"]["speedup benchmark LLaMA (11.0M)"], "{:.2f}× (11M)"),
    ("README.md", "llm_attention", lambda d: d["summary"]["window/full at max n"], "| {:.3f}× of full time at 8k"),
    ("README.md", "explain_deepshap", lambda d: row(d["rows"], model="mlp")["speedup"], "| {:.1f}× (MLP)"),
    ("README.md", "explain_deepshap", lambda d: row(d["rows"], model="cnn")["speedup"], "{:.1f}× (CNN)"),
    ("README.md", "explain_deepshap", lambda d: row(d["rows"], model="resnet")["speedup"], "{:.1f}× (ResNet"),
    ("README.md", "rl_ppo_cartpole", lambda d: d["table"][0]["speed ratio vs SB3"], "{:.2f}× SB3 env steps per CPU-s"),
    ("README.md", "rl_sac_pendulum", lambda d: d["table"][0][LIB].replace("-", "−"), "| {} at 20k steps"),
    ("README.md", "rl_sac_pendulum", lambda d: d["table"][1][LIB].replace("-", "−"), "(SB3 {})"),
    ("README.md", "rl_sac_pendulum", lambda d: d["table"][0]["speed ratio vs SB3"], "{:.2f}× SB3"),
    ("README.md", "rl_offline_d3rlpy", lambda d: row(d["table"], algo="IQL")["frontierkit score"].split(" ±")[0],
     "IQL {} vs"),
    ("README.md", "rl_offline_d3rlpy", lambda d: row(d["table"], algo="IQL")["d3rlpy score"].split(" ±")[0],
     "vs {} ("),
    ("README.md", "rl_offline_d3rlpy", lambda d: row(d["table"], algo="CQL")["frontierkit score"].split(" ±")[0],
     "CQL {} vs"),
    ("docs/rl.md", "rl_offline_d3rlpy", lambda d: row(d["table"], algo="IQL")["frontierkit score"],
     "lifts it to {} over 3 seeds"),
    ("docs/rl.md", "rl_offline_d3rlpy", lambda d: row(d["table"], algo="IQL")["frontierkit score"], "| {} |"),
    ("README.md", "privacy_dp", lambda d: " / ".join(f"{r['test_acc']:.2f}" for r in d["rows"]),
     "ε = 1 / 3 / 8 / ∞: {}"),
    ("README.md", "vision_digits", lambda d: d["accuracy"]["cnn"], "CNN {:.1f}%"),
    ("README.md", "vision_digits", lambda d: d["accuracy"]["resnet"], "ResNet {:.1f}%"),
    ("README.md", "vision_digits", lambda d: d["accuracy"]["mlp"], "MLP {:.1f}%"),
    ("README.md", "vision_digits", lambda d: d["accuracy"]["vit"], "ViT {:.1f}%"),
    ("docs/vision.md", "vision_digits", lambda d: d["accuracy"]["mlp"], "| mlp | {:.1f}% |"),
    ("docs/vision.md", "vision_digits", lambda d: d["accuracy"]["cnn"], "| cnn | {:.1f}% |"),
    ("docs/vision.md", "vision_digits", lambda d: d["accuracy"]["resnet"], "| resnet | {:.1f}% |"),
    ("docs/vision.md", "vision_digits", lambda d: d["accuracy"]["vit"], "| vit | {:.1f}% |"),
    ("docs/vision.md", "vision_digits", lambda d: d["accuracy"]["cnn@400"], "At 400 steps: CNN {:.1f}%"),
    ("docs/vision.md", "vision_digits", lambda d: d["accuracy"]["resnet@400"], "ResNet {:.1f}%. Upscaled"),
    ("docs/vision.md", "vision_digits", lambda d: d["accuracy"]["vit_up2_p4@400"], "ViT {:.1f}% at 400 steps"),
    ("docs/vision.md", "vision_digits", lambda d: (d["accuracy"]["resnet_shapes"], d["steps"]["resnet_shapes"]),
     "ResNet {0[0]:.1f}% at {0[1]} steps"),
    ("README.md", "multimodal_clip", lambda d: 100 * row(d["rows"], model="CLIP zero-shot (prompt ensemble)")["shape"],
     "shape {:.1f}% (goal 90%"),
    ("README.md", "multimodal_clip", lambda d: 100 * row(d["rows"], model="CLIP zero-shot (prompt ensemble)")["position"],
     "position {:.1f}% (chance"),
    ("README.md", "multimodal_llava", lambda d: 100 * row(d["rows"], model="LLaVA (stage 1 + stage 2)")["overall"],
     "| {:.1f}% exact match vs"),
    ("README.md", "agents_toolformer", lambda d: row(d["rows"], digits=6)["tool"], "with the tool 1.00 (1-5 digits), {:.2f} (6"),
    ("README.md", "science_schnet", lambda d: row(d["curve"], **{"train conformers": 800})["energy_mae"],
     "→ {:.3f} kcal/mol from 50 to 800 conformers"),
    ("README.md", "serve_stress", lambda d: (d["admitted"], d["rejected_429"], d["errors"]),
     "{0[0]} admitted and answered, {0[1]} × 429, {0[2]} errors"),
    ("README.md", "serve_stress", lambda d: d["peak_rss_mib"], "peak RSS {:.1f} MiB"),
    ("docs/reliability.md", "serve_stress", lambda d: (d["admitted"], d["rejected_429"]), "| 500 | 2 | {0[0]} | {0[0]} | {0[1]} | 0 |"),
    ("README.md", "privacy_fl", lambda d: (d["checks"]["labels_heavy_drift"]["best_fedprox_mean"],
                                           d["checks"]["labels_heavy_drift"]["fedavg_mean"]),
     "FedProx μ=0.1 {0[0]:.3f} ± 0.050 vs FedAvg {0[1]:.3f} ±"),
    ("README.md", "privacy_fl", lambda d: (d["checks"]["labels_stragglers_0.5"]["best_fedprox_mean"],
                                           d["checks"]["labels_stragglers_0.5"]["fedavg_mean"]),
     "with 50 % stragglers FedProx {0[0]:.3f} ± 0.027 vs FedAvg {0[1]:.3f} ±"),
    ("README.md", "diffusion_quality", lambda d: tuple(row(d["shapes"], samples=TEXT_ONLY)[k]
                                                       for k in ("color_acc", "position_acc", "shape_acc")),
     "shapes from held-out captions: colour {0[0]:.3f} (chance 0.167), position {0[1]:.3f} (chance 0.111), "
     "shape {0[2]:.3f}"),
    ("README.md", "diffusion_quality", lambda d: (row(d["shapes"], samples=VAE_ROW)["shape_acc"],
                                                  row(d["shapes"], samples=REAL_ROW)["shape_acc"]),
     "the VAE's reconstructions read {0[0]:.3f}, real images {0[1]:.3f}"),
    ("README.md", "diffusion_quality", lambda d: tuple(row(d["shapes"], samples=s)["mask_iou"]
                                                       for s in (CN_OUTLINE, CN_MASK, TEXT_ONLY)),
     "ControlNet mask IoU {0[0]:.3f} (outline) / {0[1]:.3f} (mask) vs {0[2]:.3f} text-only"),
    ("README.md", "diffusion_quality", lambda d: row(d["digits"], samples=DIGITS_S1)["frechet"],
     "FD in a kit CNN's feature space {:.1f} (real"),
]


@pytest.mark.parametrize("doc,name,value,template", CHECKS,
                         ids=[f"{c[0]}:{c[3][:40]}" for c in CHECKS])
def test_quoted_number_matches_results_file(doc, name, value, template):
    quoted = template.format(value(results(name)))
    assert quoted in (ROOT / doc).read_text(), f"{doc} should say {quoted!r} (benchmarks/results/{name}.json)"


def test_benchmark_table_dates_match_results_files():
    """README's benchmark table: each linked results file's date is the date the row states."""
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"\| \[(\w+)\]\(benchmarks/results/\w+\.md\) \((\d{4}-\d\d-\d\d)\)", readme)
    assert len(rows) >= 10
    for name, date in rows:
        assert results(name)["date"][:10] == date, name


def test_every_results_file_names_the_command_that_regenerates_it():
    for f in RESULTS.glob("*.json"):
        command = json.loads(f.read_text()).get("command", "")
        assert "benchmarks/" in command and ".py" in command, f.name
