"""Diffusion sample quality, trained here on a 2-core CPU, measured in a kit classifier's feature space
(no Inception weights offline: this Fréchet distance is NOT FID's Inception-v3 space):

- digits (8×8): pixel DDPM unconditional and class-conditional (CFG s = 1, 3): Fréchet distance to the
  held-out digits, and for class-conditional samples the classifier's agreement with the asked class;
- samplers: DDIM (η = 0) and DPM-Solver++(2M) at 10/20/50 steps (DDIM also 100) from the same x_T on the
  unconditional digits model: RMSE to a 1000-step DDIM reference (the ODE solution) and Fréchet distance;
- shapes (32×32, latent diffusion: VAE trained here, then the text-conditioned UNet): samples for
  held-out captions (CFG s = 3, DPM-Solver++ 20 steps): caption accuracy (shape judged by the shapes
  classifier, colour/position measured), Fréchet distance to held-out images;
- ControlNet on outlines (edges) and on filled masks vs the same text-only model and captions: mask IoU with
  the held-out shape.

    python benchmarks/diffusion_quality.py --write            # full training and sample sizes
    python benchmarks/diffusion_quality.py --quick --write    # short training runs, fewer samples
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short training runs and fewer samples")
    import bench_common
    bench_common.add_write_arg(ap)
    args = ap.parse_args()

    import torch

    from frontierkit.diffusion import experiments as E
    from frontierkit.diffusion import metrics as M
    from frontierkit.diffusion.data import digits_data, shapes_data
    from frontierkit.diffusion.train import encode_latents, load_vae

    torch.set_num_threads(1)
    q = args.quick
    n_dig, n_ref, n_shapes = (150, 50, 64) if q else (500, 250, 300)
    t0 = time.perf_counter()
    clf_d = E.load_classifier(E.classifier_run("digits", q, quiet=False))
    clf_s = E.load_classifier(E.classifier_run("shapes", q, quiet=False))
    uncond, cond = E.digits_run(q, "none", quiet=False), E.digits_run(q, "class", quiet=False)
    text = E.shapes_text_run(q, quiet=False)
    cn = E.controlnet_run(q, quiet=False)
    cn_mask = E.controlnet_run(q, quiet=False, condition="mask")
    train_s = time.perf_counter() - t0

    # ---- digits: Fréchet distance in the digits classifier's feature space
    x_te, y_te = digits_data("test")
    x_tr, _ = digits_data("train")
    f_te = M.penultimate_features(clf_d, x_te)
    fd = lambda x: M.frechet_distance(M.penultimate_features(clf_d, x), f_te)  # noqa: E731
    digits_rows = [{"samples": "real train digits (floor)", "n": len(x_tr), "frechet": fd(x_tr)}]
    pu = E.pipeline_for(uncond, "DPMSolverMultistepScheduler")
    digits_rows.append({"samples": "unconditional, DPM-Solver++ 20", "n": n_dig,
                        "frechet": fd(E.generate(pu, n_dig, 20, seed=1))})
    pc = E.pipeline_for(cond, "DPMSolverMultistepScheduler")
    labels = torch.arange(n_dig) % 10
    for s in (1.0, 3.0):
        x = E.generate(pc, n_dig, 20, seed=2, labels=labels, guidance_scale=s)
        digits_rows.append({"samples": f"class-conditional CFG s={s:g}, DPM-Solver++ 20", "n": n_dig,
                            "frechet": fd(x), "class_acc": (M.classify(clf_d, x) == labels).float().mean().item()})
    digits_rows[0]["class_acc"] = (M.classify(clf_d, x_te) == y_te).float().mean().item()

    # ---- samplers vs a 1000-step reference, same x_T
    ref = E.generate(E.pipeline_for(uncond, "DDIMScheduler"), n_ref, 1000, seed=3)
    f_ref = fd(ref)
    sched_rows = [{"sampler": "DDIM 1000 (reference)", "steps": 1000, "rmse_to_ref": 0.0, "frechet": f_ref}]
    for name, label, steps in (("DDIMScheduler", "DDIM", (10, 20, 50, 100)),
                               ("DPMSolverMultistepScheduler", "DPM-Solver++(2M)", (10, 20, 50)),
                               ("EulerDiscreteScheduler", "Euler", (10, 20, 50))):
        p = E.pipeline_for(uncond, name)
        for n in steps:
            x = E.generate(p, n_ref, n, seed=3)
            sched_rows.append({"sampler": f"{label} {n}", "steps": n,
                               "rmse_to_ref": (x - ref).pow(2).mean().sqrt().item(), "frechet": fd(x)})

    # ---- shapes: latent text-to-image and ControlNet on held-out captions
    te = shapes_data("test")
    idx = torch.arange(n_shapes) % len(te)
    caps = [te.captions[i] for i in idx.tolist()]
    labs = {k: v[idx] for k, v in te.labels.items()}
    f_real = M.penultimate_features(clf_s, te.images)
    fds = lambda x: M.frechet_distance(M.penultimate_features(clf_s, x), f_real)  # noqa: E731
    shapes_rows = [{"samples": "real held-out images (ceiling)", **M.caption_accuracy(clf_s, te.images[idx], labs),
                    "mask_iou": M.mask_iou(te.images[idx], te.masks[idx]),
                    "frechet": fds(shapes_data("train").images[:len(te)])}]
    vae = load_vae(E.vae_run(q))
    with torch.no_grad():
        z = encode_latents(vae, te.images[idx])
        rec = (vae.decode(z / vae.cfg.scaling_factor).clamp(-1, 1) + 1) / 2
    shapes_rows.append({"samples": "VAE reconstructions of the same images (latent ceiling)",
                        **M.caption_accuracy(clf_s, rec, labs), "mask_iou": M.mask_iou(rec, te.masks[idx]),
                        "frechet": fds(rec)})
    pt = E.pipeline_for(text, "DPMSolverMultistepScheduler")
    x_text = E.generate(pt, n_shapes, 20, seed=4, prompts=caps, guidance_scale=3.0)
    shapes_rows.append({"samples": "text-only, CFG s=3, DPM-Solver++ 20", **M.caption_accuracy(clf_s, x_text, labs),
                        "mask_iou": M.mask_iou(x_text, te.masks[idx]), "frechet": fds(x_text)})
    x_cns = {}
    for kind, run in (("outline", cn), ("mask", cn_mask)):
        pcn = E.pipeline_for(text, "DPMSolverMultistepScheduler", controlnet=run)
        x_cns[kind] = x = E.generate(pcn, n_shapes, 20, seed=4, prompts=caps, guidance_scale=3.0,
                                     control=te.control(kind)[idx])
        shapes_rows.append({"samples": f"ControlNet ({kind}) + text, CFG s=3", **M.caption_accuracy(clf_s, x, labs),
                            "mask_iou": M.mask_iou(x, te.masks[idx]), "frechet": fds(x)})
    x_cn = x_cns["outline"]
    torch.save({"text": x_text[:16], "controlnet": x_cn[:16], "outlines": te.outlines[idx][:16],
                "captions": caps[:16], "digits": E.generate(pc, 20, 20, seed=5, labels=torch.arange(20) % 10,
                                                            guidance_scale=3.0)},
               E.run_dir("samples", q).with_suffix(".pt"))

    info = bench_common.meta("python benchmarks/diffusion_quality.py" + (" --quick" if q else ""))
    info.update(quick=q, train_and_load_seconds=round(train_s, 1), total_seconds=round(time.perf_counter() - t0, 1),
                digits=digits_rows, samplers=sched_rows, shapes=shapes_rows,
                steps={k: v[0 if q else 1] for k, v in E.STEPS.items()},
                note="Fréchet distance in the feature space of a small kit CNN trained on the same data "
                     "(no Inception weights offline); not comparable to published FID numbers.")
    body = ["Fréchet distance is measured in the penultimate features of a small kit CNN classifier trained",
            "on the same data (no Inception weights are available offline): it ranks models here, it is not FID.",
            f"Training steps: {info['steps']}; a shared 2-core CPU (other jobs running).", "",
            "## Digits (pixel DDPM, 8×8)", *bench_common.table(digits_rows), "",
            "## Samplers vs a 1000-step DDIM reference (same x_T, unconditional digits model)",
            *bench_common.table(sched_rows), "",
            "## Shapes (latent text-to-image on held-out captions; ControlNet on held-out outlines / masks)",
            *bench_common.table(shapes_rows)]
    bench_common.write("diffusion_quality", info, body)


if __name__ == "__main__":
    main()
