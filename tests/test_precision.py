"""``precision: auto``: bf16 where the machine computes it natively, fp32 (or fp16 on an older GPU) elsewhere; the
choice and the machine are in the run's config; ``mmlightning env`` prints the capability line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from mmlightning import machine as machines
from mmlightning.machine import Machine, choose_precision, machine
from tests.conftest import fit_shapes

AVX2 = Machine("2.x", "Some CPU", "AVX2", False, False, False, 2, "", False)
AMX = Machine("2.x", "Some CPU", "AVX512", True, True, True, 2, "", False)


def test_auto_is_fp32_without_bf16_instructions_and_bf16_with_them():
    assert choose_precision("cpu", AVX2)[0] == "32-true"
    assert "no bf16 instructions" in choose_precision("cpu", AVX2)[1]
    avx512 = replace(AVX2, isa="AVX512")  # AVX-512 without bf16: oneDNN emulates it, slower than fp32
    assert choose_precision("cpu", avx512)[0] == "32-true"
    assert choose_precision("cpu", AMX) == ("bf16-mixed", "this CPU computes bf16 natively (AMX instructions)")
    assert choose_precision("auto", replace(AMX, amx=False))[1].endswith("(AVX-512 bf16 instructions)")


def test_auto_on_a_gpu_is_bf16_then_fp16_then_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = replace(AVX2, gpu="Some GPU", gpu_bf16=True)
    assert choose_precision("gpu", gpu)[0] == "bf16-mixed"
    assert choose_precision("cpu", gpu)[0] == "32-true"  # the Trainer asked for the CPU: the CPU decides
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert choose_precision("auto", replace(gpu, gpu_bf16=False))[0] == "16-mixed"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))
    assert choose_precision("cuda", replace(gpu, gpu_bf16=False))[0] == "32-true"


def test_a_onednn_cap_below_bf16_turns_bf16_off(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    found = machine()
    assert not found.bf16 and found.onednn_cap == "AVX2"
    assert choose_precision("cpu", found)[0] == "32-true"
    assert "capped at AVX2" in found.line()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert not machines.onednn_capped()


def saved_config(run) -> dict:
    return yaml.safe_load((Path(run.folder) / "config.yaml").read_text())


@pytest.mark.parametrize(("found", "expected"), [(AVX2, "32-true"), (AMX, "bf16-mixed")])
def test_the_resolved_precision_and_its_reason_are_in_the_saved_config(
    shapes_data, tmp_path, monkeypatch, capsys, found, expected
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mmlightning.trainer.machine", lambda: found)  # bf16 reported absent, or present
    result = fit_shapes(shapes_data, trainer={"logger": False, "precision": "auto"})
    config = saved_config(result)
    assert config["trainer"]["precision"] == expected
    assert config["machine"]["line"] == found.line()
    assert config["machine"]["precision"].startswith(f"auto gave {expected}, because ")
    assert f"precision auto: {expected}, because" in capsys.readouterr().err
    assert 0 <= result.metrics["val/label/acc"] <= 1


def test_bf16_forced_on_a_cpu_without_it_is_warned_about(shapes_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mmlightning.trainer.machine", lambda: AVX2)
    fit_shapes(shapes_data, trainer={"logger": False, "precision": "bf16-mixed", "limit_train_batches": 1})
    err = capsys.readouterr().err
    assert "without bf16 instructions" in err and "--trainer.precision=auto" in err


def test_the_trainer_built_from_python_resolves_auto(monkeypatch):
    from mmlightning.trainer import Trainer

    monkeypatch.setattr("mmlightning.trainer.choose_precision", lambda accelerator: ("32-true", "because"))
    trainer = Trainer(precision="auto", accelerator="cpu", logger=False, enable_checkpointing=False)
    assert trainer.precision == "32-true"


def test_a_disk_cache_is_not_shared_between_precisions(tmp_path):
    from mmlightning.cache import FeatureCache

    encoder = torch.nn.Linear(2, 2)
    encoder.processor = lambda: type("P", (), {"state": lambda self: {}})()  # type: ignore[method-assign]
    cache = FeatureCache(tmp_path)
    cache.check("image", encoder, "32-true")
    fp32 = cache.entries["image"].path
    cache.check("image", encoder, "bf16-mixed")
    assert cache.entries["image"].path != fp32


def test_env_prints_the_capability_line(capsys):
    from mmlightning.cli.main import main

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"line: {machine().line()}" in out and "precision auto" in out
    assert main(["env", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["isa"] == torch.backends.cpu.get_cpu_capability()
    assert found["precision_auto"]["cpu"] in ("32-true", "bf16-mixed")
