"""Tour section: FNO (Li et al. 2021) predictions of Burgers at 4x the training resolution against the
solver, a Darcy triptych (coefficient, truth, prediction) at 2x the training resolution, and the N-body
table of EGNN (Satorras et al. 2021) against a plain GNN, the SchNet (Schütt et al. 2017) learning curve. Reuses the runs cached by
benchmarks/science_fno.py, science_egnn.py and science_schnet.py; without them it trains a small Burgers FNO."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..report import Section, TourContext

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


def _cached_model(name: str):
    """The newest cached benchmark run ``<name>-*`` (its model/ folder), or None."""
    from ..data import cache_dir
    runs = sorted((cache_dir() / "science" / "runs").glob(f"{name}-*/model/config.json"),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        return None
    from ..models import open_model
    return open_model(runs[-1].parent)


def _quick_burgers_fno(ctx: TourContext):
    """A small FNO trained briefly on a small Burgers set (when no benchmark run is cached)."""
    from ..config import from_dict
    from .train import FNORunConfig, train_fno
    cfg = from_dict(FNORunConfig, {"data": {"problem": "burgers", "n_train": 200, "n_test": 20, "s": 128},
                                   "model": {"n_modes": [24], "hidden_channels": 16, "use_channel_mlp": False,
                                             "lifting_channel_ratio": 0.0},
                                   "train": {"steps": 40 if ctx.quick else 150, "batch_size": 20, "lr": 3e-3,
                                             "warmup_steps": 0, "log_every": 20, "grad_clip": 0.0}})
    model, _ = train_fno(cfg, ctx.out / "fno-burgers", quiet=True)
    return model, cfg.data


def _burgers_figure(model, data_cfg):
    import matplotlib.pyplot as plt
    import torch
    from .train import fno_data
    s_fine = 1024
    a, u = fno_data(data_cfg, "test", s_fine)
    with torch.no_grad():
        pred = model(a[:3])
    x = torch.arange(s_fine) / s_fine
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for i, ax in enumerate(axes):
        ax.plot(x, a[i, 0], color="0.7", lw=1, label="u0")
        ax.plot(x, u[i, 0], "k", lw=1.5, label="solver u(t=1)")
        ax.plot(x, pred[i, 0], "r--", lw=1.2, label=f"FNO (trained at s={data_cfg.res})")
        ax.set_xlabel("x")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Burgers at s={s_fine} ({s_fine // data_cfg.res}x the training grid)")
    fig.tight_layout()
    return fig


def darcy_triptych(model, data_cfg, index: int = 0):
    """Coefficient a, FD-solver truth u and the FNO's u on the 85 x 85 test grid (2x the 43 training grid)."""
    import matplotlib.pyplot as plt
    import torch
    from .train import DARCY_A, DARCY_U, fno_data
    s = 85
    a, u = fno_data(data_cfg, "test", s)
    with torch.no_grad():
        pred = model(a[index:index + 1])
    err = float(((pred[0] - u[index]).norm() / u[index].norm()))
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    coef = a[index, 0] * DARCY_A[1] + DARCY_A[0]                     # back to the coefficient's values {3, 12}
    lim = (float(u[index].min()) / DARCY_U, float(u[index].max()) / DARCY_U)   # truth and prediction share a scale
    for ax, img, title, (lo, hi) in zip(axes, (coef, u[index, 0] / DARCY_U, pred[0, 0] / DARCY_U),
                                        ("coefficient a", "truth u (FD solve)",
                                         f"FNO (trained at s={data_cfg.res}), rel L2 {err:.3f}"),
                                        ((None, None), lim, lim)):
        im = ax.imshow(img, origin="lower", cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f"Darcy at s={s}")
    fig.tight_layout()
    return fig


def _curve_figure(curve: list[dict]):
    import matplotlib.pyplot as plt
    n = [r["train conformers"] for r in curve]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, key, unit in zip(axes, ("energy_mae", "force_mae"), ("kcal/mol", "kcal/mol/A")):
        ax.loglog(n, [r[key] for r in curve], "o-")
        ax.set_xlabel("training conformers")
        ax.set_ylabel(f"{key.replace('_', ' ')} ({unit})")
    fig.tight_layout()
    return fig


def _results(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def tour(ctx: TourContext) -> Section:
    import torch
    from ..config import from_dict
    from .train import FNODataConfig
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sec = Section(title="AI for science: Fourier neural operators and E(n)-equivariant networks",
                  summary="FNO (Li et al. 2021) learns PDE solution operators on data simulated here and applies "
                          "zero-shot on finer grids; EGNN (Satorras et al. 2021) predicts charged-particle motion "
                          "exactly equivariantly. Numbers from reduced training (see docs/science.md).")
    loaded = _cached_model("fno-burgers")
    if loaded is not None:
        model, dcfg = loaded.model.eval(), from_dict(FNODataConfig, loaded.run["data"], prefix="data.")
    else:
        model, dcfg = _quick_burgers_fno(ctx)
        sec.text.append(("note", "no cached benchmark run: a small FNO trained just now (run "
                                 "benchmarks/science_fno.py for the full one)"))
    sec.figures.append(("Burgers: FNO vs solver at a finer grid than training", _burgers_figure(model.eval(), dcfg)))
    darcy = _cached_model("fno-darcy")
    if darcy is not None:
        dd = from_dict(FNODataConfig, darcy.run["data"], prefix="data.")
        sec.figures.append(("Darcy triptych: coefficient, truth, FNO prediction zero-shot at 2x the training grid",
                            darcy_triptych(darcy.model.eval(), dd)))
    fno = _results("science_fno")
    if fno:
        sec.tables.append((f"FNO vs CNN, relative L2 ({fno['date'][:10]}, {fno['command']})", fno["accuracy"]))
        sec.tables.append(("Burgers calibration", fno["burgers_energy"]))
        sec.tables.append(("Training speed vs neuraloperator", fno["speed"]))
    egnn = _results("science_egnn")
    if egnn:
        sec.tables.append((f"N-body test MSE ({egnn['date'][:10]}, {egnn['command']})", egnn["rows"]))
    schnet = _results("science_schnet")
    if schnet:
        sec.figures.append(("SchNet learning curve on MMFF94 ethanol (not DFT)", _curve_figure(schnet["curve"])))
        sec.tables.append((f"SchNet held-out MAE vs training size ({schnet['date'][:10]}, {schnet['command']}); "
                           f"MMFF94 labels, not DFT", schnet["curve"]))
        sec.tables.append(("MD with the learned force field vs MMFF94", schnet["md"]))
    sec.seconds = time.perf_counter() - t0
    return sec
