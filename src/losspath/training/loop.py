"""The training loop: index-slice batches from in-memory tensors, checkpoints on a schedule, resume, reuse.

Randomness is a pure function of (seed, position): the data order of epoch e is a permutation drawn from
SeedSequence([data_seed, e]) and the augmentation of each batch from SeedSequence([data_seed, e, i]). So
a run interrupted anywhere and resumed from its last resume point ends bit-identical to an uninterrupted
one on the same machine, with no generator state to save.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoints import save_state
from ..compute_options import DEFAULT, ComputeOptions, describe, with_defaults
from ..files import DamagedFile, atomic_write, check_output_dir, load_checksummed, notice, write_json
from ..data import Dataset, Split, load_dataset
from ..device import resolve_device
from ..errors import LosspathError, TrainingDiverged
from ..hparams import Hparams
from ..limits import MAX_ITERATIONS, check_model_fits
from ..models import build_model
from ..steps import checkpoint_schedule, iterations_per_epoch, parse_step
from ..perturb import perturb_state
from ..store import Run, default_root, run_lock
from .distributed import spawn_ranks
from .evaluate import evaluate
from .optim import lr_at, make_optimizer

PROGRESS_SECONDS = 60.0  # without a terminal (a log file, nohup): one progress line on stderr this often
RESUME_SECONDS = 30.0  # at most this much training is redone after an interruption between checkpoints
FULL_BATCH_CHUNK = 4096  # full-batch gradients are accumulated over chunks of this many examples
FLUSH_EVERY = 64  # batch losses stay on the device this many iterations at most before the host reads them
KEEP_LOGITS = 2**16  # a batch's logits up to this many values wait for the read to count wrong predictions


def _generator(*key: int) -> torch.Generator:
    seed = int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def epoch_order(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of `epoch`: a permutation that depends only on (seed, epoch)."""
    return torch.randperm(num_examples, generator=_generator(seed, epoch))


def model_for(hp: Hparams, data: Dataset) -> torch.nn.Module:
    """The network `hp` describes, initialized with `hp.seed` (its weights at iteration 0)."""
    return build_model(hp.model, data.input_shape, data.num_classes, init_scale=hp.init_scale,
                        activation=hp.activation, bias=hp.bias, seed=hp.seed, bias_init=hp.bias_init,
                        poly_degree=hp.poly_degree, poly_interval=hp.poly_interval)


def initial_model(hp: Hparams, data: Dataset, root) -> torch.nn.Module:
    """The network at iteration 0: `model_for`'s fresh init, or the `init_from` checkpoint of another run
    in the same store, perturbed layer-wise by `perturb` (Liao & Poggio's branches)."""
    model = model_for(hp, data)
    if hp.init_from:
        parent, _, step = hp.init_from.partition("@")
        parent_run = Run.open(Path(root or default_root()) / parent)
        model.load_state_dict(parent_run.load_checkpoint(step or "last"))
    if hp.perturb:
        model.load_state_dict(perturb_state(model.state_dict(), hp.perturb, _generator(hp.perturb_seed, 2)))
    return model


def train(hp: Hparams, *, root=None, data_root=None, dataset: Dataset | None = None,
          progress: bool = True, device: str | torch.device | None = None, nproc: int = 1,
          options: ComputeOptions = DEFAULT) -> Run:
    """Find the finished run for `hp` under `root`, or train it (resuming an interrupted one).

    `nproc` > 1 trains with DistributedDataParallel in that many processes (NCCL on GPUs, gloo on CPU),
    splitting each global batch across them. `options`: TF32, bf16 autocast, channels_last, torch.compile
    (compute_options; recorded in DONE, not in the run's hash). Returns the `Run`; its directory holds the
    checkpoints at every iteration of the schedule.
    """
    run = Run.for_hparams(hp.validate(), root)
    options.check_device(resolve_device(device))
    if run.is_complete and run.verify() is None:
        _say_if_made_otherwise(run, made_with(resolve_device(device), nproc, options))
        return run
    # Check everything a user can get wrong before anything is written.
    data = dataset if dataset is not None else load_dataset(hp.dataset, data_root)
    plan = plan_run(hp, len(data.train))
    _check_finite_inputs(data)
    # weights, gradients, momentum and a checkpoint being written
    check_model_fits(hp.model, lambda: model_for(hp, data), copies=4, what="train here")
    model = initial_model(hp, data, root)
    device = resolve_device(device)
    options.check_model(model, hp.model, device)
    if nproc < 1 or (nproc > 1 and hp.batch_size and hp.batch_size < nproc):
        raise LosspathError(f"--nproc must be at least 1 and at most the batch size, not {nproc}.")
    check_output_dir(run.dir.parent, "--root")
    with run_lock(run):
        if run.is_complete:  # damaged (or another process finished it meanwhile)
            problem = run.verify()
            if problem is None:
                _say_if_made_otherwise(run, made_with(device, nproc, options))
                return run
            notice(f"{problem}; retraining run {run.dir.name} from iteration 0.")
            (run.done_file).unlink()
            (run.resume_file).unlink(missing_ok=True)
        write_json(run.hparams_file, hp.to_dict())
        write_json(run.info_file, plan)
        _drop_damaged_resume_point(run, plan)
        loop = _train_locked if options == DEFAULT else _TrainWithOptions(options)
        if nproc == 1:
            loop(run, data, model, plan, progress, device)
        else:
            spawn_ranks(functools.partial(_train_rank, loop, run, data, plan, progress), device, nproc)
    return run


class _TrainWithOptions:
    """`_train_locked` with non-default compute options (a picklable callable, for the DDP ranks)."""

    def __init__(self, options: ComputeOptions):
        self.options = options

    def __call__(self, *args, **kwargs):
        return _train_locked(*args, **kwargs, options=self.options)


def _on_device(data: Dataset, device: torch.device) -> Dataset:
    """The data set with its in-memory splits copied to the GPU once, when they fit in half its free memory:
    batches are then gathered and augmented there, with no host copy per batch. On the CPU, and for streamed
    splits (ImageNet), the data set as it is."""
    if device.type != "cuda":
        return data
    free = torch.cuda.mem_get_info(device)[0] // 2

    def moved(split):
        nonlocal free
        if type(split) is not Split:
            return split
        size = split.inputs.nbytes + split.targets.nbytes
        if size > free:
            return split
        free -= size
        return Split(split.inputs.to(device), split.targets.to(device), split.num_classes)

    return dataclasses.replace(data, train=moved(data.train), test=moved(data.test))


def _train_rank(loop, run: Run, data: Dataset, plan: dict, progress: bool, rank: int, world: int,
                device: torch.device) -> None:
    """One DistributedDataParallel rank (distributed.spawn_ranks starts it): the run's initial model, then `loop`."""
    loop(run, data, initial_model(run.hparams, data, run.dir.parent), plan, progress, device, rank=rank, world=world)


def _check_finite_inputs(data: Dataset) -> None:
    inputs = getattr(data.train, "inputs", None)  # streamed splits (ImageNet) are not scanned
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and not torch.isfinite(inputs).all():
        raise LosspathError(f"The training inputs of data set {data.name!r} hold NaN or infinite values; "
                            "losspath cannot train on them.")


def plan_run(hp: Hparams, n: int) -> dict:
    """Iterations per epoch, the last iteration and the checkpoint schedule of a run on `n` examples."""
    per_epoch = iterations_per_epoch(n, hp.batch_size)
    last = parse_step(hp.steps, per_epoch)
    if last <= 0:
        raise LosspathError(f"Training length {hp.steps!r} is zero iterations; give a positive length.")
    if last > MAX_ITERATIONS:
        raise LosspathError(f"Training length {hp.steps!r} is {last} iterations; losspath trains at most "
                            f"{MAX_ITERATIONS:,} iterations.")
    for text in (hp.milestones, hp.warmup):  # parse now so a typo fails before training starts
        [parse_step(m, per_epoch) for m in text.split(",") if m.strip()]
    return dict(iterations_per_epoch=per_epoch, last_step=last, num_train=n,
                schedule=checkpoint_schedule(hp.checkpoints, last, per_epoch))


def _train_locked(run: Run, data: Dataset, model, plan: dict, progress: bool, device: torch.device,
                  rank: int = 0, world: int = 1, options: ComputeOptions = DEFAULT) -> None:
    """The loop. With world > 1 this is one rank of DistributedDataParallel: every rank draws the same global
    batch and takes its contiguous share of it; the gradient all-reduce then gives the global batch's mean
    gradient, and only rank 0 writes files.

    Nothing in an iteration waits for the device: batch losses stay there and the host reads them (and checks
    them for divergence) every FLUSH_EVERY iterations and before anything is saved or logged."""
    with options.numerics(device):
        _loop(run, data, model, plan, progress, device, rank, world, options)


def _loop(run: Run, data: Dataset, model, plan: dict, progress: bool, device: torch.device, rank: int, world: int,
          options: ComputeOptions) -> None:
    hp = run.hparams
    n, per_epoch, last = plan["num_train"], plan["iterations_per_epoch"], plan["last_step"]
    schedule = set(plan["schedule"])
    main = rank == 0
    data = _on_device(data, device)
    inputs = getattr(data.train, "inputs", None)
    index_device = inputs.device if isinstance(inputs, torch.Tensor) else torch.device("cpu")
    model = options.layout_model(model.to(device))
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net = options.compiled(net)
    opt = make_optimizer(model, hp)
    resumed = _resume(run, model, opt, device)  # its metrics were logged before it was saved
    t, sums, metrics_bytes = resumed if resumed else (0, [0.0, 0.0, 0], 0)
    resumed_at = t if resumed else None
    if main:
        _truncate_metrics(run, metrics_bytes)
    augment = data.augment if hp.augment else None
    full_batch = hp.batch_size <= 0 or hp.batch_size >= n
    start_time = saved_at = time.time()
    order, order_epoch = None, None
    pending = []  # (iteration, batch size, summed loss and wrong predictions on the device) not yet read
    last_metrics = {}
    model.train()

    bar = tqdm(total=last, initial=t, desc=run.dir.name, unit="it", disable=None if progress and main else True,
               leave=False)
    log_lines = progress and main and not sys.stderr.isatty()  # tqdm stays silent there
    logged_at = time.time()
    while True:
        epoch, pos = divmod(t, per_epoch)
        if pending and (pos == 0 or t == last or t in schedule or len(pending) >= FLUSH_EVERY):
            _read_batch_stats(pending, sums, resumed_at, hp, world)
        if t in schedule and main:
            save_state(run.checkpoint(t), model.state_dict())
        if (pos == 0 or t == last) and t != resumed_at and main:
            last_metrics = _log_metrics(run, model, data, t, sums, device)
            if sums[2]:
                bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}")
            sums = [0.0, 0.0, 0]
        if t == last or (hp.stop_at_train_error and pos == 0 and t > 0 and t != resumed_at
                         and _reached_target(run, model, data, t, device, plan, main)):
            break
        # resume points: every checkpoint, and epoch ends at most every RESUME_SECONDS (full-batch runs
        # have an epoch per iteration; a save per iteration would dominate their cost)
        if main and (t in schedule or (pos == 0 and time.time() - saved_at > RESUME_SECONDS)):
            _save_resume(run, model, opt, t, sums)
            saved_at = time.time()

        for g in opt.param_groups:
            g["lr"] = lr_at(t, hp, per_epoch)
        opt.zero_grad(set_to_none=True)
        if full_batch:
            index = torch.arange(n, device=index_device)
        else:
            if order_epoch != epoch:
                order, order_epoch = epoch_order(n, hp.order_seed, epoch).to(index_device), epoch
            index = order[pos * hp.batch_size:(pos + 1) * hp.batch_size]
        gen = _generator(hp.order_seed, epoch, pos, 1, rank) if augment else None
        chunk = FULL_BATCH_CHUNK if full_batch else len(index)
        batch_loss = batch_wrong = None  # summed over the batch (its chunks in float64, in order)
        for lo in range(0, len(index), chunk):
            part = index[lo:lo + chunk].tensor_split(world)[rank]
            x, y = data.train.batch(part, gen)  # a split may augment at decode (ImageNet crops)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, gen)
            with options.autocast(device):
                logits = net(options.layout_inputs(x))
            if options.bf16:
                logits = logits.float()
            loss = F.cross_entropy(logits, y, reduction="sum")
            (loss * (world / len(index))).backward()  # DDP averages over ranks: the global batch mean
            if batch_loss is None and len(index) == len(part) and logits.numel() <= KEEP_LOGITS:
                batch_loss, batch_wrong = loss.detach(), (logits.detach(), y)  # counted when read, in bulk
                continue
            wrong = (logits.argmax(1) != y).sum()
            if batch_loss is None:
                batch_loss, batch_wrong = loss.detach(), wrong
            else:
                batch_loss, batch_wrong = batch_loss.double() + loss.detach().double(), batch_wrong + wrong
        pending.append((t, len(index), batch_loss, batch_wrong))
        opt.step()
        t += 1
        bar.update(1)
        if log_lines and time.time() - logged_at >= PROGRESS_SECONDS:
            print(f"{run.dir.name}: iteration {t}/{last}", file=sys.stderr, flush=True)
            logged_at = time.time()
    bar.close()
    if not main:
        return
    stop = {}
    if hp.stop_at_train_error:
        train_error = evaluate(model, data.train, device=device)[1]
        stop = dict(converged=train_error <= hp.stop_at_train_error, train_error=train_error,
                    stop_reason=(f"training error {train_error:.4g} ≤ {hp.stop_at_train_error:g}" if t < last else
                                 f"reached the cap of {last} iterations" + (
                                     "" if train_error > hp.stop_at_train_error else " (converged there)")))
    write_json(run.done_file, dict(last_step=t, **last_metrics, **stop, wall_seconds=round(time.time() - start_time, 3),
                                      made_with=made_with(device, world, options), files=run.manifest(plan["schedule"])))
    (run.resume_file).unlink(missing_ok=True)


def _read_batch_stats(pending: list, sums: list, resumed_at: int | None, hp: Hparams, world: int = 1) -> None:
    """Add the batch losses and errors still on the device to the epoch's `sums` (in iteration order, as the
    loop always summed them; summed over the DDP ranks first), and raise TrainingDiverged at the first iteration
    whose loss is not finite. One read for many iterations: each iteration itself adds one reduction (the wrong
    predictions) to its forward and backward."""
    losses = [loss for _, _, loss, _ in pending]
    same = all(loss.dtype == losses[0].dtype for loss in losses)
    losses = torch.stack(losses if same else [loss.double() for loss in losses]).double()
    stats = torch.stack([losses, _wrong_predictions([wrong for *_, wrong in pending]).double()], 1)
    if world > 1:
        torch.distributed.all_reduce(stats)
    rows = stats.cpu().tolist()
    for (t, size, *_), (loss, wrong) in zip(pending, rows):
        if not math.isfinite(loss):
            raise TrainingDiverged(_divergence(loss, t, resumed_at, hp))
        sums[0] += loss / size
        sums[1] += wrong / size
        sums[2] += 1
    pending.clear()


def _wrong_predictions(items: list) -> torch.Tensor:
    """Wrong predictions per iteration: an item is the count, or the batch's (logits, targets) still to count;
    those are counted together, one argmax per batch shape (an epoch's last batch may be shorter)."""
    counts = list(items)
    shapes: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            shapes.setdefault(tuple(item[0].shape), []).append(i)
    for rows in shapes.values():
        logits = torch.stack([items[i][0] for i in rows])
        targets = torch.stack([items[i][1] for i in rows])
        for i, wrong in zip(rows, (logits.argmax(2) != targets).sum(1)):
            counts[i] = wrong
    return torch.stack(counts)


def made_with(device: torch.device, processes: int = 1, options: ComputeOptions = DEFAULT) -> dict:
    """What a run's weights depend on beyond its hparams: torch's thread count (reduction order), the torch
    version, the device type, the number of training processes and the compute options (precision, tf32,
    channels_last, compile). Recorded in DONE."""
    return dict(threads=torch.get_num_threads(), torch=torch.__version__, device=device.type, processes=processes,
                **options.record())


def describe_made_with(m: dict) -> str:
    processes = f", {m['processes']} processes" if m.get("processes", 1) > 1 else ""
    return (f"{m['threads']} torch thread{'s' if m['threads'] != 1 else ''} on {m['device']}{processes}"
            f"{describe(m)}, torch {m['torch']}")


def _say_if_made_otherwise(run: Run, now: dict) -> None:
    """A finished run is reused whatever made it (its directory is named by its hparams alone); a notice says so
    when it was trained under another thread count, torch version, device type, process count or compute options
    (compute_options) than this call's:
    its weights are that setup's, not what training here would give."""
    then = run.done().get("made_with")
    if then and with_defaults(then) != with_defaults(now):
        notice(f"reusing run {run.dir.name}, trained with {describe_made_with(then)}; this call has "
               f"{describe_made_with(now)} (weights depend on these, so a retrain here could differ in the last bits).")


def _reached_target(run: Run, model, data: Dataset, t: int, device, plan: dict, main: bool) -> bool:
    """Training to convergence (Hparams.stop_at_train_error): at an epoch end, is the exact training error (eval
    mode, whole training split) at most the target? If so, iteration t becomes the run's last step: its
    checkpoint is saved and run.json records the shortened schedule (and the cap it replaced). Every rank
    computes the same error on the same weights, so all stop together."""
    if evaluate(model, data.train, device=device)[1] > run.hparams.stop_at_train_error:
        return False
    if main:
        if t not in plan["schedule"]:
            save_state(run.checkpoint(t), model.state_dict())
        plan.update(cap_step=plan["last_step"], last_step=t, schedule=[s for s in plan["schedule"] if s < t] + [t])
        write_json(run.info_file, plan)
    return True


def _divergence(loss: float, t: int, resumed_at: int | None, hp: Hparams) -> str:
    """Why the loss is not finite: at the very first batch no update has happened yet, so the learning rate
    cannot be the cause."""
    if t == 0 and resumed_at is None:
        return (f"The loss is {loss} at the first batch, before any update: the initialization is too large "
                f"(--init-scale {hp.init_scale:g}) or the inputs hold extreme values.")
    return f"Training diverged (loss is {loss}) at iteration {t}; lower the learning rate."


def _save_resume(run: Run, model, opt, t: int, sums: list) -> None:
    """Weights, momentum buffers and the iteration: all a resumed run needs (randomness is positional), and
    the length and sha256 of metrics.csv at this point, so a resume can check what it keeps of it."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    for i, p in enumerate(opt.param_groups[0]["params"]):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            state[f"optim.{i}.momentum_buffer"] = buf
    metrics = _metrics_bytes(run)
    save_state(run.resume_file, state,
               metadata=dict(iteration=str(t), sums=json.dumps(sums), metrics_bytes=str(len(metrics)),
                             metrics_sha256=hashlib.sha256(metrics).hexdigest()))


def _metrics_bytes(run: Run) -> bytes:
    path = run.metrics_file
    return path.read_bytes() if path.is_file() else b""


def _drop_damaged_resume_point(run: Run, plan: dict) -> None:
    """Keep resume.safetensors only if it, the metrics.csv rows it keeps and every checkpoint saved up to it
    read back as written; otherwise remove it (the run restarts from iteration 0) with a notice."""
    path = run.resume_file
    if not path.exists():
        return
    try:
        _, meta = load_checksummed(path)
        t, n = int(meta["iteration"]), int(meta["metrics_bytes"])
        metrics = _metrics_bytes(run)[:n]
        if len(metrics) != n or hashlib.sha256(metrics).hexdigest() != meta["metrics_sha256"]:
            raise DamagedFile(run.metrics_file, "its rows up to the resume point differ from those written")
        for s in plan["schedule"]:
            if s <= t:
                if not run.checkpoint(s).is_file():
                    raise DamagedFile(run.checkpoint(s), "it is missing")
                load_checksummed(run.checkpoint(s))
    except DamagedFile as e:
        problem = f"{e.path} is damaged ({e.reason})"
    except (KeyError, ValueError):
        problem = f"{path} lacks its resume metadata"
    else:
        return
    notice(f"{problem}; restarting run {run.dir.name} from iteration 0.")
    path.unlink(missing_ok=True)


def _resume(run: Run, model, opt, device) -> tuple[int, list, int] | None:
    """Load the resume point into `model` and `opt`: (iteration, epoch sums, length of metrics.csv then), or
    None for a fresh start."""
    path = run.resume_file
    if not path.is_file():
        return None
    state, meta = load_checksummed(path)
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    params = opt.param_groups[0]["params"]
    for i, p in enumerate(params):
        buf = state.get(f"optim.{i}.momentum_buffer")
        if buf is not None:
            opt.state[p]["momentum_buffer"] = buf.to(device)
    return int(meta["iteration"]), json.loads(meta["sums"]), int(meta["metrics_bytes"])


def _log_metrics(run: Run, model, data: Dataset, t: int, sums: list, device) -> dict:
    """Append metrics.csv rows: the mean over the epoch's training batches, and the exact test metrics.

    Returns them as a dict (test_loss, test_error and, after the first epoch, train_batches_loss/error).
    """
    rows, out = [], {}
    if sums[2]:
        out = dict(train_batches_loss=sums[0] / sums[2], train_batches_error=sums[1] / sums[2])
        rows.append(f"{t},train_batches,{out['train_batches_loss']:.6g},{out['train_batches_error']:.6g}")
    loss, error = evaluate(model, data.test, device=device)
    out.update(test_loss=loss, test_error=error)
    rows.append(f"{t},test,{loss:.6g},{error:.6g}")
    path = run.metrics_file
    new = not path.is_file()
    with open(path, "a") as f:
        if new:
            f.write("step,split,loss,error\n")
        f.write("\n".join(rows) + "\n")
    return out


def _truncate_metrics(run: Run, length: int) -> None:
    """Keep the first `length` bytes of metrics.csv (the rows logged up to the resume point; nothing on a fresh
    start); training logs the rest again."""
    path = run.metrics_file
    if not path.is_file():
        return
    if length == 0:
        path.unlink()
        return
    kept = path.read_bytes()[:length]
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(kept))
