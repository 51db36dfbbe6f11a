"""What the CPU is, how many of its cores this process may use, and how fast they together read memory.

Decoding a caption reads every weight once per token, so a decoding step can be no faster than its bytes read at
the memory's bandwidth: `captioner benchmark` compares the two. Standard library and numpy only, so that this
can be asked without loading torch.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CPUINFO = Path("/proc/cpuinfo")
CPUS = Path("/sys/devices/system/cpu")
MEMINFO = Path("/proc/meminfo")

# (name reported, numpy's names for it, Linux /proc/cpuinfo flags for it), in the order reported. numpy knows
# most of these on every OS; AVX_VNNI, AMX_INT8 and I8MM it does not, and they are found on Linux only.
FEATURES = (
    ("AVX2", ("AVX2",), ("avx2",)),
    ("FMA3", ("FMA3",), ("fma",)),
    ("AVX512F", ("AVX512F",), ("avx512f",)),
    ("AVX512_VNNI", ("AVX512VNNI",), ("avx512_vnni",)),
    ("AVX_VNNI", (), ("avx_vnni",)),
    ("AMX_INT8", (), ("amx_int8",)),
    ("NEON", ("NEON", "ASIMD"), ("neon", "asimd")),
    ("ASIMDDP", ("ASIMDDP",), ("asimddp",)),  # the int8 dot product (SDOT/UDOT)
    ("I8MM", (), ("i8mm",)),
    ("SVE", ("SVE",), ("sve",)),
)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_name() -> str:
    """The processor's marketing name, e.g. "Intel(R) Core(TM) i7-1165G7 @ 2.80GHz" or "Apple M2"."""
    if sys.platform == "darwin":
        name = _sysctl("machdep.cpu.brand_string")
    elif sys.platform == "win32":
        name = _windows_cpu_name()
    else:
        name = _cpuinfo_field("model name") or _cpuinfo_field("Model")  # "Model": Raspberry Pi and other ARM boards
    return name or platform.processor() or platform.machine()


def vector_features() -> list[str]:
    """The CPU's features that decide int8 matrix-vector speed, of FEATURES, in its order."""
    known = _numpy_cpu_features()
    flags = _linux_cpu_flags()
    return [name for name, numpy_names, linux_flags in FEATURES if _has(numpy_names, linux_flags, known, flags)]


def _has(numpy_names: tuple[str, ...], linux_flags: tuple[str, ...], known: dict[str, bool],
         flags: set[str]) -> bool:
    """numpy's answer where numpy knows the feature (it also checks that the OS enables it), else Linux's."""
    answers = [known[name] for name in numpy_names if name in known]
    return any(answers) if answers else any(flag in flags for flag in linux_flags)


def read_bandwidth(seconds: float = 1.0) -> float:
    """GB/s (1e9 bytes) that all the cores together read from memory: the best of the passes made within about
    `seconds` (filling the buffer included), over a buffer 4 times the last-level cache and at least 1 GiB.

    Each of os.cpu_count() threads reads its own slice (numpy's reductions release the GIL). The best pass, not
    the median: other work on the machine can only slow a pass down, and the figure is meant as the floor that a
    decoding step cannot beat.
    """
    started = time.perf_counter()
    threads = os.cpu_count() or 1
    buffer = np.empty(_buffer_bytes() // 8, dtype=np.float64)
    slices = np.array_split(buffer, threads)
    passes = []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda part: part.fill(1.0), slices))  # the page faults now, not while timing
        while len(passes) < 3 or time.perf_counter() - started < seconds:
            begun = time.perf_counter()
            list(pool.map(np.max, slices))  # numpy's fastest reduction: faster than memory, even on one core
            passes.append(time.perf_counter() - begun)
    return buffer.nbytes / min(passes) / 1e9


def _buffer_bytes() -> int:
    """Much larger than the last-level cache, so that what is read comes from memory; at most a quarter of the
    memory available."""
    size = max(2**30, 4 * (_last_level_cache_bytes() or 0))
    available = _available_memory_bytes()
    return min(size, available // 4) if available else size


def _last_level_cache_bytes() -> int | None:
    """The last-level cache of all the CPUs together (one per socket, or per core complex), where Linux tells."""
    caches = {}  # (level, the CPUs sharing it) -> bytes
    for index in CPUS.glob("cpu[0-9]*/cache/index[0-9]*"):
        try:
            level = int((index / "level").read_text())
            shared = (index / "shared_cpu_list").read_text().strip()
            caches[level, shared] = _size_bytes((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
    if not caches:
        return None
    top = max(level for level, _ in caches)
    return sum(size for (level, _), size in caches.items() if level == top)


def _size_bytes(text: str) -> int:
    """'307200K' -> 314572800."""
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
    return int(text.rstrip("KkMmGg")) * scale


def _available_memory_bytes() -> int | None:
    """Memory available without swapping (Linux), or the physical memory (macOS); None where neither is told."""
    for line in _read_lines(MEMINFO):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _numpy_cpu_features() -> dict[str, bool]:
    """numpy's own CPU detection (every OS); empty if this numpy does not expose it."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # numpy 2
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__  # numpy 1
        except ImportError:
            return {}
    return dict(__cpu_features__)


def _linux_cpu_flags() -> set[str]:
    """The "flags" (x86) or "Features" (ARM) of the first CPU in /proc/cpuinfo; empty elsewhere."""
    flags = _cpuinfo_field("flags") or _cpuinfo_field("Features") or ""
    return set(flags.split())


def _cpuinfo_field(key: str) -> str | None:
    for line in _read_lines(CPUINFO):
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _sysctl(name: str) -> str | None:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _windows_cpu_name() -> str | None:
    """The name Windows shows ("Intel(R) Core(TM) i7-..."); platform.processor() gives only family and model."""
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
            return winreg.QueryValueEx(key, "ProcessorNameString")[0].strip()
    except OSError:
        return None
