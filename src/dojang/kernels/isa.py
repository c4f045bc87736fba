"""The vector instruction set the compiled kernels are built for, decided in one place.

The direct convolution's register tiles (``kernels.conv._tiles``) are shaped for a vector
unit: AVX2 has 16 registers of 8 float32, AVX-512 32 registers of 16. ``family()`` says
which table of tiles and thresholds ``kernels.plan`` uses: ``"avx512"`` when the target
has AVX-512F, else ``"avx2"`` (also on hosts with neither, where the AVX2 tiles are the
smaller ones and stay correct, only not tuned).

The target is what numba compiles for: the features in ``NUMBA_CPU_FEATURES`` when that is
set (numba reads the same variable), else the host's as LLVM reports them (llvmlite,
which numba asks too). Nothing here imports numba, and the answer is cached: one look per
process. ``DOJANG_ISA`` / ``dojang.settings.isa(family)`` force a family (tests run the
AVX2 tables on any host that way); forcing ``"avx512"`` on a host without it picks the
AVX-512-shaped tiles, still compiled for the host, so they run correctly, only slower.
"""

from __future__ import annotations

import functools
import os

from dojang import settings

FAMILIES = settings.ISA_FAMILIES


@functools.cache
def target_features() -> frozenset[str]:
    """The CPU features numba compiles for (names as LLVM spells them: ``"avx2"``,
    ``"avx512f"``, ``"fma"``); empty when they cannot be read."""
    text = os.environ.get("NUMBA_CPU_FEATURES")
    if text is not None:  # "+avx2,+fma,-avx512f": numba passes it to LLVM as is
        return frozenset(f[1:] for f in text.split(",") if f.startswith("+"))
    try:
        import llvmlite.binding as ll

        return frozenset(name for name, on in ll.get_host_cpu_features().items() if on)
    except (ImportError, RuntimeError):  # no llvmlite (then no numba), or no feature list
        return frozenset()


def detected() -> str:
    """The family of the target's vector unit: ``"avx512"`` or ``"avx2"``."""
    return "avx512" if "avx512f" in target_features() else "avx2"


def family() -> str:
    """The family whose tiles and thresholds the planner uses: the forced one
    (``dojang.settings.isa``) or the detected one."""
    return settings.get_isa() or detected()
