"""What does each lever of the slice evaluator buy? Supernets trained with different settings, scored on
the architectures a default run evaluated, against what those architectures reach after distillation.

    .venv/bin/python bench/supernet_levers.py --run /tmp/fid/run [--levers base,steps300,...] \
        [--out bench/results/supernet_levers.json]

RUN is a finished `bertsmith run` on which `bench/fidelity.py` has distilled its architectures
(`RUN/fidelity/t*/result.json`). A lever is a supernet's sandwich steps, learning rate and random
sub-networks per step, and whether each slice's output layer is refitted (ridge regression of its input
features on the gold labels of 1,024 training examples, one-hot for classes) before it is scored. For every
lever the script trains the supernet (kept in `RUN/levers/`, reused on a rerun), scores every feasible
architecture of the run's study, and records the training time, Kendall tau and Spearman rho against the
distilled dev scores (also over the distilled architectures above half the budget, where the choice is
made, and against the mean over seeds where `fidelity.py --seed` distilled them again), and how many
architectures above a quarter of the budget score at a constant predictor's level.
Run it alone on the machine: the training times are compared.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
LEVERS = {  # name: supernet steps, lr, random sub-networks per step, refit the output layer
    "base": dict(steps=100, lr=1e-4, random=2, refit=False),
    "refit": dict(steps=100, lr=1e-4, random=2, refit=True),
    "lr5e-4": dict(steps=100, lr=5e-4, random=2, refit=False),
    "steps300": dict(steps=300, lr=1e-4, random=2, refit=False),
    "steps200+lr5e-4": dict(steps=200, lr=5e-4, random=2, refit=False),
    "steps300+lr5e-4": dict(steps=300, lr=5e-4, random=2, refit=False),
    "steps300+lr5e-4+random1": dict(steps=300, lr=5e-4, random=1, refit=False),
}
REFIT_EXAMPLES, REFIT_RIDGE = 1024, 1e-2


@torch.no_grad()
def refit_head(model, data, examples: int = REFIT_EXAMPLES, ridge: float = REFIT_RIDGE) -> None:
    """Replace the output layer by the ridge fit of its input features to the one-hot gold labels of
    ``examples`` training examples (a fixed permutation)."""
    from bertsmith.data import collate

    train = data.splits["train"]
    indices = np.random.default_rng(0).permutation(len(train))[:examples]
    indices = indices[np.argsort(-train.lengths[indices], kind="stable")]
    features: list[torch.Tensor] = []
    hook = model.head.out.register_forward_hook(lambda _m, inputs, _o: features.append(inputs[0].float()))
    model.eval()
    try:
        for start in range(0, len(indices), 64):
            batch = collate(train, indices[start : start + 64], data.pad_id)
            model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    finally:
        hook.remove()
    x = torch.cat(features)
    x = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    labels = torch.as_tensor(train.labels[indices])
    y = labels.float()[:, None] if model.num_labels == 1 else F.one_hot(labels.long(), model.num_labels).float()
    gram = x.T @ x
    penalty = ridge * gram.diagonal()[:-1].mean() * torch.eye(len(gram))
    penalty[-1, -1] = 0.0
    w = torch.linalg.solve(gram + penalty, x.T @ y)
    model.head.out.weight.copy_(w[:-1].T)
    model.head.out.bias.copy_(w[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "supernet_levers.json")
    args = parser.parse_args()

    from scipy import stats

    from bertsmith.arch import ArchSpec
    from bertsmith.distill.task import evaluate, load_task_data, load_tokenizer
    from bertsmith.distill.trainer import TrainConfig
    from bertsmith.quality import at_constant_level
    from bertsmith.search.space import SearchSpace
    from bertsmith.search.supernet import SupernetJob, load_supernet
    from fidelity import distilled_by_seed, load_searched_run  # bench/fidelity.py, beside this script

    run = load_searched_run(args.run)
    config, teacher, task, metric, budget, level = run.config, run.teacher, run.task, run.metric, run.budget, run.level
    space = SearchSpace.load(args.run / "search" / "space.yaml")
    archs = {s["trial"]: s for s in run.scored}
    trials = [int(p.parent.name[1:]) for p in sorted((args.run / "fidelity").glob("t*/result.json"))]
    by_seed = {
        t: {seed: r["metrics"]["dev"][metric] for seed, r in distilled_by_seed(args.run, t, config.seed).items()}
        for t in trials
    }
    distilled = {t: by_seed[t][config.seed] for t in trials}
    seeds = sorted(set.intersection(*(set(r) for r in by_seed.values())))
    mean = {t: float(np.mean([by_seed[t][k] for k in seeds])) for t in trials}
    upper = [t for t in distilled if archs[t]["params"] > budget / 2]
    above = [t for t, a in archs.items() if a["params"] > budget / 4]
    print(
        f"{len(archs)} architectures ({len(above)} above a quarter of the budget), {len(distilled)} distilled",
        flush=True,
    )

    data = load_task_data(
        task, load_tokenizer(teacher["directory"]), data_dir=config.data_dir, max_length=config.max_length
    )
    results = json.loads(args.out.read_text())["levers"] if args.out.is_file() else {}
    for name in args.levers.split(","):
        lever = LEVERS[name]
        steps, lr, random = lever["steps"], lever["lr"], lever["random"]
        job = SupernetJob(
            space,
            Path(teacher["directory"]),
            task,
            random_subnets=random,
            run_dir=args.run / "levers" / f"{steps}-{lr:g}-{random}",
            max_length=config.max_length,
            config=TrainConfig(steps=steps, lr=lr, batch_size=32, eval_every=max(1, steps // 5), seed=0),
            progress=False,
        )
        start = time.perf_counter()
        trained = job.train()
        train_s = None if trained.reused else time.perf_counter() - start
        supernet = load_supernet(trained.directory).eval()
        start = time.perf_counter()
        scores = {}
        for t, a in archs.items():
            model = supernet.extract(ArchSpec.from_dict(a["spec"]))
            if lever["refit"]:
                refit_head(model, data)
            scores[t] = evaluate(model, data, "dev")[metric]
        eval_s = time.perf_counter() - start
        constant = [t for t in above if at_constant_level(scores[t], level, config.quality.constant_margin)]
        xs, ys = [scores[t] for t in distilled], list(distilled.values())
        old = results.get(name, {})
        results[name] = lever | {
            "train_seconds": train_s if train_s is not None else old.get("train_seconds"),
            "eval_seconds_per_arch": eval_s / len(archs),
            "kendall_tau": stats.kendalltau(xs, ys).statistic,
            "spearman": stats.spearmanr(xs, ys).statistic,
            "kendall_tau_above_half": stats.kendalltau(
                [scores[t] for t in upper], [distilled[t] for t in upper]
            ).statistic,
            "seeds": seeds,
            "kendall_tau_seed_mean": stats.kendalltau(xs, [mean[t] for t in distilled]).statistic,
            "at_constant_level_above_quarter": len(constant),
            "mean_gap_to_distilled": float(np.mean([d - scores[t] for t, d in distilled.items()])),
            "scores": {str(t): s for t, s in scores.items()},
        }
        r = results[name]
        print(
            f"{name:26} tau {r['kendall_tau']:.3f} rho {r['spearman']:.3f}  "
            f"tau above 1/2 {r['kendall_tau_above_half']:.3f}  tau vs {len(seeds)}-seed mean "
            f"{r['kendall_tau_seed_mean']:.3f}  at constant level above 1/4: "
            f"{len(constant)} of {len(above)}  gap {r['mean_gap_to_distilled']:+.3f}  "
            f"train {r['train_seconds'] or 0:.0f} s  eval {r['eval_seconds_per_arch']:.2f} s/arch",
            flush=True,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "run": str(args.run),
                    "task": config.task,
                    "metric": metric,
                    "constant_level": level,
                    "budget_params": budget,
                    "distilled": {str(t): d for t, d in distilled.items()},
                    "levers": results,
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
