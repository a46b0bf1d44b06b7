"""GPU figures of issue 15, measured in one run: CIFAR-ResNet-20 training iterations/s at batch 128 under each
compute option, a 100-point ResNet-20 line on 10k CIFAR-shaped test images (BatchNorm interpolated and recomputed)
against a plain per-α loop, and the projected wall time of the full `cifar10-resnet_20` Frankle study.

    python benchmarks/gpu_figures.py --device cuda --out results/gpu_check   # the figures (~4 min on one H200)
    python benchmarks/gpu_figures.py --device cpu --smoke                    # tiny sizes, seconds (a smoke test)

`benchmarks/gpu_check.sh` runs it after the GPU tests. The data are random CIFAR-shaped tensors (the timings do not
depend on the values; no data set is needed). Training is timed inside losspath's own loop (`training.train`):
the wall time between the starts of iterations WARM and WARM + TIMED, with the device synchronized at both, so
compilation, warm-up, evaluations and checkpoint saves are excluded; evaluation and saving are timed separately
and enter the projection. Writes gpu_figures.json and gpu_figures.txt under --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import plain_line  # noqa: E402

from losspath.checkpoints import save_state  # noqa: E402
from losspath.compute_options import ComputeOptions  # noqa: E402
from losspath.data import Dataset, Split  # noqa: E402
from losspath.data.cifar10 import augment  # noqa: E402
from losspath.errors import LosspathError  # noqa: E402
from losspath.hparams import Hparams, paper_defaults  # noqa: E402
from losspath.lines import evaluate_line  # noqa: E402
from losspath.models import build_model  # noqa: E402
from losspath.training import evaluate, plan_run, train  # noqa: E402
import losspath.training.loop as loop  # noqa: E402

MODEL, SHAPE = "cifar_resnet_20", (3, 32, 32)
FULL = dict(model=MODEL, n_train=50_000, n_test=10_000, batch=128, warm=30, timed=200, points=100, bn_batches=20,
            plain_alphas=10)
SMOKE = dict(model="cifar_resnet_8_8", n_train=64, n_test=32, batch=16, warm=1, timed=2, points=3, bn_batches=1,
             plain_alphas=2)
TRAINING = {  # label: options; compile and TF32 where they apply
    "fp32 (exact, default)": ComputeOptions(),
    "tf32": ComputeOptions(tf32=True),
    "bf16 autocast": ComputeOptions(bf16=True),
    "channels_last": ComputeOptions(channels_last=True),
    "bf16 + channels_last": ComputeOptions(bf16=True, channels_last=True),
    "compiled (fp32)": ComputeOptions(compile=True),
}
STUDY_REPLICATES = 3  # the Frankle study: 3 replicates, a line from every checkpoint t to the last one


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_split(n: int, seed: int, device: torch.device) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, *SHAPE, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device), 10)


def skip_reason(label: str, options: ComputeOptions, device: torch.device, smoke: bool) -> str | None:
    if options.tf32 and device.type != "cuda":
        return "CUDA only"
    if options.compile and smoke:
        return "not in --smoke (compilation alone takes ~30 s on a CPU)"
    return None


def training_rate(data: Dataset, options: ComputeOptions, sizes: dict, device: torch.device) -> float:
    """Iterations/s of losspath's loop between iterations WARM and WARM + TIMED (no evaluation or save between)."""
    warm, timed = sizes["warm"], sizes["timed"]
    hp = Hparams(dataset="cifar_shaped", model=sizes["model"], steps=f"{warm + timed + 1}it", batch_size=sizes["batch"],
                 lr=0.1, momentum=0.9, weight_decay=1e-4, checkpoints="0,last")
    stamps = {}
    real_lr_at = loop.lr_at

    def stamping_lr_at(t, *args):  # the loop asks for the learning rate once, at the start of iteration t
        if t in (warm, warm + timed):
            sync(device)
            stamps[t] = time.perf_counter()
        return real_lr_at(t, *args)

    loop.lr_at = stamping_lr_at
    try:
        with tempfile.TemporaryDirectory() as root:
            train(hp, root=root, dataset=data, progress=False, device=device, options=options)
    finally:
        loop.lr_at = real_lr_at
    return timed / (stamps[warm + timed] - stamps[warm])


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    value = fn()
    sync(device)
    return time.perf_counter() - t0, value


def line_figures(sizes: dict, device: torch.device, test: Split, train_split: Split) -> dict:
    """Seconds for one line: the engine (BN interpolated; BN recomputed from bn_batches training batches), the
    plain loop (timed on plain_alphas of the α, scaled to all), and the engine's options; plus agreement."""
    model = build_model(sizes["model"], SHAPE, 10).to(device)
    start = build_model(sizes["model"], SHAPE, 10, seed=0).state_dict()
    end = build_model(sizes["model"], SHAPE, 10, seed=1).state_dict()
    start, end = ({k: v.to(device) for k, v in s.items()} for s in (start, end))
    x, y = test.inputs, test.targets
    bn_train = (train_split.inputs[:sizes["bn_batches"] * sizes["batch"]],
                train_split.targets[:sizes["bn_batches"] * sizes["batch"]])
    points, alphas = sizes["points"], np.linspace(0, 1, sizes["points"])
    some = alphas[np.linspace(0, points - 1, sizes["plain_alphas"]).round().astype(int)]
    out = {}

    def engine(batchnorm, options=ComputeOptions()):
        return evaluate_line(model, start, end, (x, y), points=points, batchnorm=batchnorm, device=device,
                             train_data=bn_train if batchnorm == "recompute" else None, batch_size=sizes["batch"]
                             if batchnorm == "recompute" else None, progress=False, options=options)

    engine("interpolate")  # warm-up: CUDA context, cuDNN, kernels
    exact = None
    with ComputeOptions().numerics(device):  # the plain loop in exact float32 too
        plain_line(model, start, end, x[:256], y[:256], alphas[:1])
    for batchnorm in ("interpolate", "recompute"):
        seconds, result = timed(lambda: engine(batchnorm), device)
        train_arg = bn_train if batchnorm == "recompute" else None
        with ComputeOptions().numerics(device):
            plain_seconds, plain = timed(lambda: plain_line(model, start, end, x, y, some, train_arg,
                                                            sizes["batch"], sizes["bn_batches"]), device)
        ours = np.interp(some, alphas, result.loss)
        if batchnorm == "interpolate":
            exact = result.loss
        out[batchnorm] = dict(engine_s=seconds, plain_s=plain_seconds * points / len(some),
                              max_relative_difference=float(np.max(np.abs(ours - plain) / np.abs(plain))),
                              plan={k: result.info[k] for k in ("chunk", "per_call", "batch_size", "path")})
    for label, options in (("tf32", ComputeOptions(tf32=True)), ("bf16", ComputeOptions(bf16=True)),
                           ("channels_last", ComputeOptions(channels_last=True))):
        try:
            seconds, result = timed(lambda: engine("interpolate", options), device)
        except LosspathError as e:
            out[label] = dict(skipped=str(e))
            continue
        out[label] = dict(engine_s=seconds, max_abs_loss_difference=float(np.max(np.abs(result.loss - exact))),
                          max_relative_difference=float(np.max(np.abs(result.loss - exact) / exact)))
    return out


def projection(rates: dict, lines: dict, eval_s: float, save_s: float) -> dict:
    """Wall time of `losspath reproduce frankle2020 --setting cifar10-resnet_20` (3 replicates, 160 epochs at batch
    128 on 50k images, a 100-point test line from every checkpoint to the last) from the measured figures."""
    hp = Hparams(dataset="cifar10", model=MODEL, **paper_defaults(MODEL))
    plan = plan_run(hp, 50_000)
    iterations = STUDY_REPLICATES * plan["last_step"]
    n_lines = STUDY_REPLICATES * (len(plan["schedule"]) - 1)
    evaluations = STUDY_REPLICATES * (plan["last_step"] // plan["iterations_per_epoch"] + 1)  # each epoch end and t=0
    saves = STUDY_REPLICATES * 2 * len(plan["schedule"])  # a checkpoint and a resume point at each
    out = dict(iterations=iterations, lines=n_lines, evaluations=evaluations, saves=saves, checkpoints=len(plan["schedule"]))
    for label in ("fp32 (exact, default)", "tf32", "bf16 + channels_last", "compiled (fp32)"):
        if label not in rates or not isinstance(rates[label], float):
            continue
        parts = dict(training_s=iterations / rates[label], lines_s=n_lines * lines["interpolate"]["engine_s"],
                     evaluations_s=evaluations * eval_s, saves_s=saves * save_s)
        out[label] = dict(parts, total_s=sum(parts.values()))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that everything runs (seconds)")
    parser.add_argument("--out", type=Path, default=None, help="write gpu_figures.json and .txt here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sizes = SMOKE if args.smoke else FULL
    if device.type == "cpu":
        torch.set_num_threads(1)  # small nets: more threads buy little and collapse on a shared machine
    lines_out = []
    record = dict(smoke=args.smoke, sizes=sizes)

    def say(text=""):
        print(text, flush=True)
        lines_out.append(text)

    def save(**results):  # after every stage: what was measured survives a time limit
        record.update(results)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu_figures.json").write_text(json.dumps(record, indent=1))
            (args.out / "gpu_figures.txt").write_text("\n".join(lines_out) + "\n")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    say(f"== GPU figures ({'SMOKE sizes, not figures' if args.smoke else 'full sizes'}) on {device.type}: {name}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads ==")
    save(device=name, torch=torch.__version__)
    train_split, test = random_split(sizes["n_train"], 0, device), random_split(sizes["n_test"], 1, device)
    data = Dataset("cifar_shaped", train_split, random_split(min(1000, sizes["n_test"]), 2, device), augment=augment)

    say(f"\n-- training {sizes['model']}, batch {sizes['batch']}, iterations/s over {sizes['timed']} iterations of losspath's "
        "loop (augmentation on the device) --")
    rates = {}
    for label, options in TRAINING.items():
        reason = skip_reason(label, options, device, args.smoke)
        if reason is None:
            rates[label] = training_rate(data, options, sizes, device)
            say(f"{label:24s} {rates[label]:9.1f} it/s")
        else:
            rates[label] = f"skipped: {reason}"
            say(f"{label:24s}   skipped: {reason}")
        save(training_it_per_s=rates)

    say(f"\n-- one {sizes['points']}-point {sizes['model']} line on {sizes['n_test']:,} test images --")
    lines = line_figures(sizes, device, test, train_split)
    save(line=lines)
    for batchnorm in ("interpolate", "recompute"):
        f = lines[batchnorm]
        extra = f", BN statistics from {sizes['bn_batches']} batches of {sizes['batch']}" if batchnorm == "recompute" else ""
        say(f"BN {batchnorm:11s} engine {f['engine_s']:8.2f} s   plain per-α loop {f['plain_s']:8.2f} s "
            f"(timed on {sizes['plain_alphas']} α, scaled)   speed-up {f['plain_s'] / f['engine_s']:5.1f}×   "
            f"max rel. difference {f['max_relative_difference']:.1e}{extra}; engine plan {f['plan']}")
    for label in ("tf32", "bf16", "channels_last"):
        f = lines[label]
        say(f"{label:14s} " + (f"skipped: {f['skipped']}" if "skipped" in f else
                               f"engine {f['engine_s']:8.2f} s   max |Δ loss| vs fp32 {f['max_abs_loss_difference']:.2e} "
                               f"(relative {f['max_relative_difference']:.1e})"))

    model = build_model(sizes["model"], SHAPE, 10).to(device)
    evaluate(model, test, device=device)
    eval_s, _ = timed(lambda: evaluate(model, test, device=device), device)
    with tempfile.TemporaryDirectory() as d:
        save_s, _ = timed(lambda: save_state(Path(d) / "s.safetensors", model.state_dict()), device)
    say(f"\nevaluation of {sizes['n_test']:,} test images {eval_s:.3f} s; a checkpoint save {save_s * 1000:.1f} ms")

    study = projection(rates, lines, eval_s * (10_000 / sizes["n_test"]), save_s)
    say(f"\n-- projected wall time of the cifar10-resnet_20 Frankle study: {STUDY_REPLICATES} × {study['iterations'] // STUDY_REPLICATES:,} "
        f"iterations, {study['lines']} lines ({study['checkpoints']} checkpoints per run), {study['evaluations']} test "
        "evaluations, one job at a time --")
    for label in ("fp32 (exact, default)", "tf32", "bf16 + channels_last", "compiled (fp32)"):
        if label in study:
            p = study[label]
            say(f"{label:24s} {p['total_s'] / 60:7.1f} min  (training {p['training_s'] / 60:.1f}, lines "
                f"{p['lines_s'] / 60:.1f}, evaluations {p['evaluations_s'] / 60:.1f}, saves {p['saves_s'] / 60:.1f})")
    if args.smoke:
        say("(smoke sizes: the projection only checks that the arithmetic runs; it is not a figure)")
    save(evaluation_s=eval_s, save_s=save_s, projection=study)


if __name__ == "__main__":
    main()
