"""docker/check_torch.py: the image's build-time sm_70 check, under the conditions of a `docker build`."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docker" / "check_torch.py"
_spec = importlib.util.spec_from_file_location("check_torch", SCRIPT)
check_torch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_torch)

V100_BUILD = "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90"      # torch 2.6.0+cu124's compiled flags
CU130_BUILD = "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"


def _fake_torch(cuda: str | None, flags: str | None, *, device: bool = False, binding: bool = True):
    """A torch module as the check sees it. get_arch_list() is torch 2.6's: [] without a device."""
    def get_arch_list():
        if not device or flags is None:
            return []
        return flags.split()

    c_module = SimpleNamespace(_cuda_getArchFlags=lambda: flags) if binding else SimpleNamespace()
    return SimpleNamespace(__version__="2.6.0", version=SimpleNamespace(cuda=cuda), _C=c_module,
                           cuda=SimpleNamespace(is_available=lambda: device, get_arch_list=get_arch_list))


def test_cuda_build_without_a_device_passes_although_get_arch_list_is_empty():
    # What `docker build` on pytorch/pytorch:2.6.0-cuda12.6 sees: the old check failed here.
    fake = _fake_torch("12.6", V100_BUILD, device=False)
    assert fake.cuda.get_arch_list() == []
    assert check_torch.compiled_arch_list(fake) == V100_BUILD.split()
    assert check_torch.check(fake) is None


def test_cuda_build_without_sm_70_fails_with_or_without_a_device():
    for device in (False, True):
        problem = check_torch.check(_fake_torch("13.0", CU130_BUILD, device=device))
        assert problem and "lacks sm_70" in problem and "sm_75" in problem


def test_cpu_build_passes():
    assert check_torch.check(_fake_torch(None, None)) is None
    assert check_torch.compiled_arch_list(_fake_torch(None, None)) == []


def test_unreadable_arch_list_fails_rather_than_passes():
    # No private binding and a get_arch_list() that needs a device: nothing confirms sm_70.
    problem = check_torch.check(_fake_torch("12.6", V100_BUILD, device=False, binding=False))
    assert problem and "cannot be read" in problem
    # The fallback is used where it works (a torch whose get_arch_list() tests _is_compiled()).
    assert check_torch.check(_fake_torch("12.6", V100_BUILD, device=True, binding=False)) is None


def test_installed_torch_passes_and_reads_its_flags_without_a_device():
    assert check_torch.check(torch) is None
    if torch.version.cuda:      # a CUDA build (the image's torch 2.6 venv): flags come from the binary
        assert "sm_70" in check_torch.compiled_arch_list(torch)
        if not torch.cuda.is_available() and torch.__version__.startswith("2.6."):
            assert torch.cuda.get_arch_list() == []     # the condition the image's build meets


def test_cli_exit_status(monkeypatch, capsys):
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("check_torch: torch "), result
    monkeypatch.setitem(sys.modules, "torch", _fake_torch("13.0", CU130_BUILD))
    assert check_torch.main([]) == 1
    assert "FAIL" in capsys.readouterr().err


def test_dockerfile_runs_this_check():
    text = (ROOT / "Dockerfile").read_text()
    assert "check_torch.py" in text and "get_arch_list" not in text
