import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from captioner_gui import benchmark
from captioner_gui.machine import FEATURES, cpu_name, read_bandwidth, vector_features

CPUINFO = Path("/proc/cpuinfo")
on_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc/cpuinfo")


def cpuinfo_field(key: str) -> str:
    return next(line.partition(":")[2].strip() for line in CPUINFO.read_text().splitlines()
                if line.partition(":")[0].strip() == key)


@on_linux
def test_vector_features_include_what_linux_tells():
    field = "flags" if "flags" in CPUINFO.read_text() else "Features"
    flags = set(cpuinfo_field(field).split())
    found = vector_features()
    for name, _, linux_flags in FEATURES:
        if flags & set(linux_flags):
            assert name in found
    assert found == [name for name, _, _ in FEATURES if name in found]  # in the fixed order


@on_linux
def test_cpu_name_is_linux_model_name():
    name = cpu_name()
    assert name
    if "model name" in CPUINFO.read_text():
        assert name == cpuinfo_field("model name")


def test_read_bandwidth_is_plausible_and_quick():
    started = time.perf_counter()
    bandwidth = read_bandwidth()
    assert time.perf_counter() - started < 3
    assert 1 < bandwidth < 1000


def stand_in(device: str, **lm) -> SimpleNamespace:
    """The part of a loaded model that the CPU results read: its device and its decoding back end."""
    return SimpleNamespace(device_name="CPU" if device == "cpu" else "NVIDIA H100", lm=SimpleNamespace(**lm))


def results_with(model: SimpleNamespace, per_token_ms: float = 30.0) -> dict:
    """Results as run_benchmark gives them, but for the timings and memory, which format_table can do without."""
    results = {"model": "random", "precision": "int8", "device": "CPU", "backend": "onnxruntime", "threads": 2,
               "per_token_ms": per_token_ms}
    return results | benchmark._cpu_results(model, per_token_ms, report=lambda message: None)


def test_table_shows_the_cpu_and_a_step_against_the_bandwidth_floor(monkeypatch):
    monkeypatch.setattr(benchmark, "read_bandwidth", lambda: 20.0)
    results = results_with(stand_in("cpu", bytes_per_step=160_000_000))
    assert results["floor_ms_per_step"] == 8.0  # 160 MB at 20 GB/s
    assert results["step_vs_floor"] == 3.75  # 30 ms a token
    table = benchmark.format_table(results)
    assert f"CPU: {cpu_name()}; vector features: {', '.join(vector_features()) or 'none known'}" in table
    assert "memory read bandwidth, all cores: 20.0 GB/s" in table
    assert "a decoding step reads 160 MB: at least 8.0 ms at that bandwidth" in table
    assert "30.0 ms, 3.75x that floor" in table


def test_no_floor_where_the_back_end_does_not_tell_its_bytes(monkeypatch):
    monkeypatch.setattr(benchmark, "read_bandwidth", lambda: 20.0)
    results = results_with(stand_in("cpu"))
    assert results["read_gb_per_s"] == 20.0
    assert "step_vs_floor" not in results and "floor" not in benchmark.format_table(results)


def test_no_cpu_bandwidth_on_cuda(monkeypatch):
    monkeypatch.setattr(benchmark, "read_bandwidth", lambda: pytest.fail("measured the CPU's memory on CUDA"))
    results = results_with(stand_in("cuda", bytes_per_step=160_000_000))
    assert results["cpu"] == cpu_name()
    assert not {"read_gb_per_s", "bytes_per_step", "floor_ms_per_step", "step_vs_floor"} & results.keys()
    assert "CPU: " in benchmark.format_table(results)
