"""The weight-sharing supernet: sub-networks inside it equal the same sub-networks cut out and
exported; gradients reach only the shared slices; sandwich training trains, saves and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertsmith.data import resolve_task
from bertsmith.data.tasktypes import CLASSIFICATION
from bertsmith.distill.trainer import TrainConfig
from bertsmith.errors import SpecError
from bertsmith.hf.checkpoint import import_checkpoint
from bertsmith.hf.export import export_pretrained
from bertsmith.search.space import SearchSpace
from bertsmith.search.supernet import SandwichObjective, Supernet, SupernetJob, load_supernet
from tests.tasks import VOCAB

EMB = {"vocab_size": VOCAB, "max_positions": 64, "type_vocab_size": 2}
# fits inside the tiny teacher of tests/tasks.py (3 layers, hidden 48, 4 heads of 12, FFN 96)
SPACE = {
    "depth": [1, 2, 3],
    "hidden": [16, 32, 48],
    "embeddings": EMB,
    "per_layer": True,
    "layer": {"heads": [1, 2, 4], "qk_dim": [6, 12], "v_dim": [6, 12], "ffn": [32, 64, 96]},
}


def batch(n: int = 3, t: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (n, t), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return ids, mask


def specs(space: SearchSpace, n: int) -> list:
    rng = np.random.default_rng(0)
    return [space.extreme(True), space.extreme(False)] + [space.sample(rng) for _ in range(n)]


def test_subnet_inside_equals_extracted_and_exported(tmp_path):
    space = SearchSpace.from_dict(SPACE)
    torch.manual_seed(0)
    net = Supernet(space, num_labels=2).eval()
    ids, mask = batch()
    for i, spec in enumerate(specs(space, 6)):
        with torch.no_grad():
            inside, _ = net(spec, ids, mask)
            alone = net.extract(spec)
            extracted, _ = alone(ids, mask)
        torch.testing.assert_close(inside, extracted, rtol=1e-5, atol=1e-5)
        if i < 3:  # exported to a Hugging Face directory and imported back
            export_pretrained(alone, tmp_path / f"m{i}")
            imported = import_checkpoint(tmp_path / f"m{i}").model.eval()
            with torch.no_grad():
                torch.testing.assert_close(imported(ids, mask)[0], inside, rtol=1e-5, atol=1e-5)


def test_gradients_reach_only_the_slice():
    space = SearchSpace.from_dict(SPACE)
    net = Supernet(space, num_labels=2)
    small = space.from_genes(
        {"depth": 1, "hidden": 32, "layer0.heads": 2, "layer0.qk_dim": 6, "layer0.v_dim": 12, "layer0.ffn": 32}
    )
    ids, mask = batch()
    logits, _ = net.eval()(small, ids, mask)
    logits.sum().backward()
    layer = net.model.encoder.layers[net.layers_for(small)[0]]
    up = layer.ffn.up.weight.grad
    assert up[:32, :32].abs().sum() > 0
    assert up[32:].abs().sum() == 0 and up[:, 32:].abs().sum() == 0
    other = [i for i in range(3) if i not in net.layers_for(small)]
    assert all(net.model.encoder.layers[i].ffn.up.weight.grad is None for i in other)


def test_space_must_be_sliceable():
    mixed = SPACE | {"layer": SPACE["layer"] | {"attention": ["mhsa", "mixed"], "head_ratio": [2]}}
    with pytest.raises(SpecError, match="layer.attention: a supernet slices only mhsa"):
        Supernet(SearchSpace.from_dict(mixed), 2)
    with pytest.raises(SpecError, match="embedding_size"):
        Supernet(SearchSpace.from_dict(SPACE | {"embedding_size": [16, None]}), 2)


def test_sandwich_draws_follow_a_saved_counter_not_the_global_rng():
    space = SearchSpace.from_dict(SPACE | {"budget": {"params": 20000}})
    objective = SandwichObjective(
        Supernet(space, 2), None, _labels_only(), task_type=CLASSIFICATION, random_subnets=3, seed=1
    )
    state = {k: v.clone() for k, v in objective.state_dict().items()}
    torch.manual_seed(5)
    first = [objective.subnets() for _ in range(4)]
    assert int(objective.state_dict()["draws.count"]) == 4
    objective.load_state_dict(state)  # a resumed run restores the counter with the checkpoint
    torch.manual_seed(6)  # dropout draws (another process's, another step's) do not move the sub-networks
    assert [objective.subnets() for _ in range(4)] == first
    assert len({tuple(s[2:]) for s in first}) > 1  # each step draws anew
    assert first[0][0] == space.extreme(True) and first[0][1] == space.extreme(False)
    assert all(not space.budget.violations(s) for draw in first for s in draw[2:])


def _labels_only():
    from bertsmith.distill.objectives import LossConfig

    return LossConfig(labels=1.0, logits=0.0)


def test_train_supernet_from_teacher(tmp_path, teacher_dir, task_file, cache_dir):
    task = resolve_task(task_file)
    space = SearchSpace.from_dict(SPACE)
    config = TrainConfig(steps=8, batch_size=16, lr=1e-3, eval_every=4)
    job = SupernetJob(
        space,
        teacher_dir,
        task,
        run_dir=tmp_path / "sn",
        config=config,
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    key = job.key
    result = job.train()
    assert not result.reused and result.steps == 8
    assert set(result.metrics) == {"accuracy", "largest_accuracy", "smallest_accuracy"}
    assert not (tmp_path / "sn" / "training" / "checkpoints").exists()
    net = load_supernet(tmp_path / "sn")
    assert net.spec == space.extreme(True)
    again = SupernetJob(
        space,
        teacher_dir,
        task,
        run_dir=tmp_path / "sn",
        config=config,
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    assert again.key == key and again.train().reused and again.get().spec == net.spec
    other = SupernetJob(space, teacher_dir, task, run_dir=tmp_path / "sn", config=TrainConfig(steps=9), max_length=16)
    assert other.key != key


def test_untrained_supernet_largest_is_the_teacher(teacher_dir, task_file, cache_dir):
    """With the space's largest architecture equal to the teacher, importance reordering and slicing
    keep the teacher's function exactly."""
    from bertsmith.distill.task import load_task_data, load_tokenizer, reorder_by_importance
    from bertsmith.distill.teacher import load_teacher
    from bertsmith.modeling.elastic import slice_weights

    task = resolve_task(task_file)
    teacher = load_teacher(teacher_dir, task).eval()
    data = load_task_data(
        task, load_tokenizer(teacher_dir, teacher.encoder.spec, 16), data_dir=None, max_length=16, cache_dir=cache_dir
    )
    ids, mask = batch()
    with torch.no_grad():
        before, _ = teacher(ids, mask)
    reorder_by_importance(teacher, data, seed=0)
    net = Supernet(SearchSpace.from_dict(SPACE), 2).eval()
    slice_weights(teacher, teacher.encoder.spec, net.model, net.spec)
    with torch.no_grad():
        torch.testing.assert_close(net(net.spec, ids, mask)[0], before, rtol=1e-4, atol=1e-4)


def test_space_larger_than_teacher_is_refused(tmp_path, teacher_dir, task_file, cache_dir):
    space = SearchSpace.from_dict(SPACE | {"hidden": [32, 64]})
    with pytest.raises(SpecError, match=r"cannot be cut from the teacher .*hidden: 64 is larger"):
        SupernetJob(
            space,
            teacher_dir,
            resolve_task(task_file),
            run_dir=tmp_path / "sn",
            config=TrainConfig(steps=2),
            max_length=16,
            cache_dir=cache_dir,
            progress=False,
        ).train()


def test_a_sandwich_step_in_parts_gives_the_gradients_of_the_whole_step():
    """The trainer runs one backward pass per sub-network (``parts_per_step``) so that one graph is
    alive at a time; the accumulated gradients and the reported losses equal the whole step's."""
    space = SearchSpace.from_dict(SPACE | {"budget": {"params": 20000}})
    torch.manual_seed(0)
    objective = SandwichObjective(
        Supernet(space, 2), None, _labels_only(), task_type=CLASSIFICATION, random_subnets=2, seed=3
    )
    batch = {
        "input_ids": torch.randint(5, 90, (4, 10)),
        "attention_mask": torch.ones(4, 10, dtype=torch.long),
        "labels": torch.tensor([0, 1, 1, 0]),
    }
    start = {k: v.clone() for k, v in objective.state_dict().items()}

    def gradients(parts: bool):
        objective.load_state_dict(start)
        objective.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout masks: forwards run in the same order either way
        if parts:
            report = {}
            for part in range(objective.parts_per_step):
                loss, step = objective(batch, part=part)
                loss.backward()
                for name, value in step.items():
                    report[name] = report.get(name, 0.0) + value
        else:
            loss, report = objective(batch)
            loss.backward()
        return report, {n: p.grad.clone() for n, p in objective.named_parameters() if p.grad is not None}

    whole_report, whole = gradients(False)
    parts_report, in_parts = gradients(True)
    assert objective.parts_per_step == 4 and set(whole) == set(in_parts)
    for name in whole:
        torch.testing.assert_close(in_parts[name], whole[name], rtol=1e-5, atol=1e-7)
    for name in ("largest", "smallest", "random"):
        torch.testing.assert_close(parts_report[name], whole_report[name])


@pytest.mark.parametrize(("steps", "every"), [(10, 10), (100, 100), (600, 250), (2000, 400)])
def test_supernet_is_evaluated_every_fifth_of_its_steps_but_not_more_often_than_every_250(steps, every, tmp_path):
    from bertsmith.search.job import _supernet_job
    from tests.search.settings import search_settings

    settings = search_settings(space=None, teacher=tmp_path, task="t", run_dir=tmp_path, supernet_steps=steps)
    job = _supernet_job(settings, SearchSpace.from_dict(SPACE), resolve_task("sst2"))
    assert job.config.eval_every == every
