"""The benchmark harness's own logic (bench/common.py): /proc parsing, ISA, layouts, alternation.

No timing is asserted: only the parsing and bookkeeping that decide what a figure means.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))

_ENV = dict(os.environ)
import common  # noqa: E402
import torch  # noqa: E402

# bench/common.py sets the benchmark's thread variables on import; the suite keeps its own
os.environ.clear()
os.environ.update(_ENV)

PROC_STAT = """cpu  300 10 60 900 20 5 5 12 7 0
cpu0 100 4 20 500 10 2 3 6 7 0
cpu1 200 6 40 400 10 3 2 6 0 0
intr 12345 0 1
ctxt 999
btime 1700000000
"""


def _busy_total(fields):
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def test_proc_stat_sums_the_chosen_cores():
    cpu0 = [100, 4, 20, 500, 10, 2, 3, 6]
    cpu1 = [200, 6, 40, 400, 10, 3, 2, 6]
    b0, t0 = _busy_total(cpu0)
    b1, t1 = _busy_total(cpu1)
    assert common.parse_proc_stat(PROC_STAT) == (b0 + b1, t0 + t1)
    assert common.parse_proc_stat(PROC_STAT, cpus={1}) == (b1, t1)
    assert common.parse_proc_stat(PROC_STAT, cpus={0}) == (b0, t0)


def test_proc_stat_of_this_machine_is_consistent():
    cpus = os.sched_getaffinity(0)
    with open("/proc/stat") as f:
        busy, total = common.parse_proc_stat(f.read(), cpus)
    assert 0 <= busy <= total and total > 0


def test_pid_stat_reads_utime_and_stime_after_an_odd_name():
    # proc(5): pid (comm) state ppid ... field 14 utime, field 15 stime
    after = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "1234", "567", "0", "0"]
    text = "4242 (we (ird) name) " + " ".join(after) + "\n"
    assert common.parse_pid_stat(text) == 1234 + 567


def test_pid_stat_agrees_with_os_times():
    tick = os.sysconf("SC_CLK_TCK")
    sum(i * i for i in range(300_000))  # some CPU time to read
    before = os.times()
    with open("/proc/self/stat") as f:
        ticks = common.parse_pid_stat(f.read())
    after = os.times()
    assert (before.user + before.system) * tick - 1 <= ticks
    assert ticks <= (after.user + after.system) * tick + 1


@pytest.mark.parametrize("flags, isa", [
    ({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"}, "AVX-512"),
    ({"sse4_2", "avx", "avx2", "fma"}, "AVX2"),
    ({"sse4_2", "avx", "avx2"}, "AVX"),  # AVX2 without FMA is not the AVX2 kernels' host
    ({"sse4_2"}, "SSE4.2"),
    (set(), "baseline x86-64"),
])
def test_isa_from_flags(flags, isa):
    assert common.isa_from_flags(flags) == isa


def test_host_info_names_the_isa_and_blas():
    info = common.host_info()
    with open("/proc/cpuinfo") as f:
        has_avx2 = any(line.startswith("flags") and " avx2" in line for line in f)
    assert (info["isa"] in ("AVX2", "AVX-512")) == has_avx2
    assert info["blas"] and all(lib["internal_api"] for lib in info["blas"])


@pytest.mark.parametrize("shape", [(2, 1, 5, 7), (2, 3, 5, 7), (1, 64, 4, 4)])
def test_layout_of_matches_torch_memory_formats(shape):
    nchw = torch.empty(shape)
    cl = torch.empty(shape, memory_format=torch.channels_last)
    assert common.layout_of(nchw.shape, nchw.stride()) == "NCHW"
    assert common.layout_of(cl.shape, cl.stride()) == "channels_last"
    assert common.layout_of(shape, nchw.transpose(2, 3).stride()) == "strided"


def test_a_transposed_one_channel_array_stays_channels_last():
    # the accident that workloads.torch_tensor avoids: no copy when C = 1
    for c, layout in ((1, "channels_last"), (3, "NCHW")):
        t = torch.from_numpy(np.ascontiguousarray(np.zeros((2, 5, 7, c), np.float32)
                                                  .transpose(0, 3, 1, 2)))
        assert common.layout_of(t.shape, t.stride()) == layout


@pytest.mark.parametrize("layout", ["NCHW", "channels_last"])
def test_torch_tensor_has_the_asked_layout_and_values(layout):
    import workloads

    x = np.random.default_rng(0).random((2, 5, 7, 1), dtype=np.float32)
    t = workloads.torch_tensor(x, layout)
    assert common.layout_of(t.shape, t.stride()) == layout
    np.testing.assert_array_equal(t.numpy(), x.transpose(0, 3, 1, 2))


def test_alternate_reverses_the_order_and_counts_busy_windows(monkeypatch):
    quiet = iter([True, False, True, True, False, True])
    monkeypatch.setattr(common, "wait_for_idle",
                        lambda exclude_pids=(): (next(quiet), 0.5))
    calls = []
    seconds = {"a": [3.0, 1.0, 2.0], "b": [5.0, 4.0, 6.0]}
    fns = {k: (lambda k=k: calls.append(k) or seconds[k][sum(c == k for c in calls) - 1])
           for k in seconds}
    t = common.alternate(fns, windows=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert dict(t) == {"a": 2.0, "b": 5.0}
    assert (t.windows, t.busy, t.reliable) == (6, 2, False)


def test_write_json_is_atomic_and_readable(tmp_path):
    import json

    path = common.write_json({"rows": [1, 2]}, str(tmp_path / "out"))
    assert json.load(open(path)) == {"rows": [1, 2]}
    assert os.listdir(tmp_path / "out") == [os.path.basename(path)]
