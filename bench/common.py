"""Shared harness of the benchmarks: threads, host facts, idle check, alternating timing, output.

Every framework is timed window by window in turn (in this process, or in a worker
process that answers one window at a time), so all see the same machine load. Before
each window the CPU must be idle: at least ``IDLE_MIN`` of the cores' time over
``IDLE_SAMPLE_S`` seconds, not counting this process and its workers (asleep then, but
their thread pools may still spin). The harness waits at most ``IDLE_WAIT_S`` for quiet,
then times the window anyway and counts it as busy; a figure with any busy window is
marked unreliable. Each figure is the median over its windows.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
# OpenBLAS keeps its worker threads spinning for a long while after each GEMM; in an
# alternating run that spin steals the next PyTorch window's cores. A short spin is fair
# to both (and makes dojang itself faster too).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

IDLE_MIN = float(os.environ.get("BENCH_IDLE_MIN", "0.9"))
IDLE_SAMPLE_S = float(os.environ.get("BENCH_IDLE_SAMPLE_S", "0.5"))
IDLE_WAIT_S = float(os.environ.get("BENCH_IDLE_WAIT_S", "3"))


def torch_setup():
    """Import PyTorch with the benchmark's thread count and seed."""
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    return torch


# ---------------------------------------------------------------------------- data
def make_data(batch, shape, classes=10, seed=0):
    """Images uniform in [0, 1) of ``shape`` (H, W, C) and integer labels: every
    framework's input (the same arrays in every process)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = rng.integers(0, classes, size=batch)
    return x, y


def conv_data(batch, shape, cout=None, seed=0):
    """Input (NHWC), 3x3 kernel (KH, KW, C, C_out; C_out = C by default) and zero bias."""
    import numpy as np

    rng = np.random.default_rng(seed)
    c = shape[-1]
    cout = cout or c
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    w = rng.standard_normal((3, 3, c, cout), dtype=np.float32) * 0.1
    return x, w, np.zeros(cout, np.float32)


# ---------------------------------------------------------------------------- host facts
ISA_LEVELS = (("AVX-512", {"avx512f"}), ("AVX2", {"avx2", "fma"}), ("AVX", {"avx"}),
              ("SSE4.2", {"sse4_2"}))


def isa_from_flags(flags) -> str:
    """The widest vector ISA among CPU ``flags`` (/proc/cpuinfo names): 'AVX-512', 'AVX2', ..."""
    flags = set(flags)
    return next((name for name, need in ISA_LEVELS if need <= flags), "baseline x86-64")


def _cpu_flags() -> tuple[set, str]:
    """The CPU's feature flags and model name, from /proc/cpuinfo or else LLVM's view."""
    try:
        info = {}
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
        return set(info.get("flags", "").split()), info.get("model name", "")
    except OSError:
        import llvmlite.binding as llvm

        feats = llvm.get_host_cpu_features()
        return {k.replace(".", "_") for k, on in feats.items() if on}, llvm.get_host_cpu_name()


def blas_info() -> list[dict]:
    """NumPy's BLAS libraries as threadpoolctl sees them (library, version, kernel, threads)."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl then finds)
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "architecture", "num_threads", "filepath")
    return [{k: lib.get(k) for k in keys} for lib in threadpool_info()
            if lib.get("user_api") == "blas"]


def host_info() -> dict:
    """What a result depends on: CPU, ISA, cores, NumPy's BLAS kernel, its env overrides."""
    import numpy

    flags, model = _cpu_flags()
    return {
        "cpu": model or platform.processor(),
        "isa": isa_from_flags(flags),
        "avx512_flags": sorted(f for f in flags if f.startswith("avx512")),
        "cores_usable": len(os.sched_getaffinity(0)),
        "threads": THREADS,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "OPENBLAS_THREAD_TIMEOUT", "DOJANG_JIT")},
    }


def host_lines(info: dict) -> list[str]:
    """``host_info()`` as printable lines."""
    blas = "; ".join(f"{b['internal_api']} {b['version']} kernel {b['architecture']}, "
                     f"{b['num_threads']} threads" for b in info["blas"]) or "not found"
    forced = {k: v for k, v in info["env"].items() if k.startswith("OPENBLAS_CORE") and v}
    return [f"host: {info['cpu']}, {info['isa']}, {info['cores_usable']} usable cores, "
            f"{info['threads']} threads per framework",
            f"NumPy {info['numpy']} BLAS: {blas}" + (f" (forced by {forced})" if forced else "")]


# ---------------------------------------------------------------------------- idle check
def parse_proc_stat(text: str, cpus=None) -> tuple[int, int]:
    """(busy, total) clock ticks of the ``cpus`` (all when None) in /proc/stat ``text``.

    Fields: user nice system idle iowait irq softirq steal [guest guest_nice, already in
    user/nice]. Idle is idle + iowait; steal (another tenant's time) counts as busy.
    """
    busy = total = 0
    for line in text.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        ticks = [int(v) for v in fields[:8]]
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def parse_pid_stat(text: str) -> int:
    """utime + stime (clock ticks, all threads) from a /proc/PID/stat ``text``."""
    fields = text[text.rindex(")") + 2:].split()  # the name in (...) may hold spaces
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _own_ticks(pids) -> int:
    ticks = 0
    for pid in pids:
        try:
            ticks += parse_pid_stat(_read(f"/proc/{pid}/stat"))
        except (OSError, ValueError):
            pass  # a worker that has exited uses no CPU
    return ticks


def idle_fraction(seconds: float = IDLE_SAMPLE_S, exclude_pids=()) -> float | None:
    """Share of the usable cores' time left idle over ``seconds`` by other processes.

    None where /proc/stat cannot be read (then no window is judged).
    """
    cpus = os.sched_getaffinity(0)
    pids = {os.getpid(), *exclude_pids}
    try:
        busy0, total0 = parse_proc_stat(_read("/proc/stat"), cpus)
    except OSError:
        return None
    own0 = _own_ticks(pids)
    time.sleep(seconds)
    busy1, total1 = parse_proc_stat(_read("/proc/stat"), cpus)
    others = max(busy1 - busy0 - (_own_ticks(pids) - own0), 0)
    return 1.0 - others / max(total1 - total0, 1)


def smoke_run() -> None:
    """For a --quick run: wait at most 1 s for quiet (unless BENCH_IDLE_WAIT_S is set)."""
    global IDLE_WAIT_S
    if "BENCH_IDLE_WAIT_S" not in os.environ:
        IDLE_WAIT_S = 1.0


def wait_for_idle(exclude_pids=(), max_wait: float | None = None) -> tuple[bool, float | None]:
    """Sample until the CPU is idle or ``max_wait`` (default ``IDLE_WAIT_S``) has passed.

    Returns (idle?, the last idle fraction).
    """
    deadline = time.monotonic() + (IDLE_WAIT_S if max_wait is None else max_wait)
    while True:
        idle = idle_fraction(exclude_pids=exclude_pids)
        if idle is None or idle >= IDLE_MIN:
            return True, idle
        if time.monotonic() >= deadline:
            return False, idle


# ---------------------------------------------------------------------------- timing
class Timing(dict):
    """name -> median (or ``alternate``'s ``stat``) seconds per step, with ``windows``,
    ``busy`` (windows that started on a busy CPU, all names together) and ``idle`` (the
    idle fraction before each window)."""

    def __init__(self, medians: dict, windows: int, idle: list):
        super().__init__(medians)
        self.windows, self.idle = windows, idle
        self.busy = sum(1 for quiet, _ in idle if not quiet)

    @property
    def reliable(self) -> bool:
        """True when every window started on an idle CPU."""
        return self.busy == 0


def alternate(window_fns: dict, windows: int, exclude_pids=(),
              stat=statistics.median) -> Timing:
    """Run each ``window_fns[name]()`` (one timed window, returns seconds per step) in turn.

    The order reverses every other round, so no framework always follows the same one.
    Each window waits for an idle CPU first (see ``wait_for_idle``). ``stat`` summarises
    a name's windows (the median; ``min`` for the least disturbed one).
    """
    samples = {name: [] for name in window_fns}
    idle = []
    for i in range(windows):
        names = list(window_fns) if i % 2 == 0 else list(reversed(window_fns))
        for name in names:
            idle.append(wait_for_idle(exclude_pids))
            samples[name].append(window_fns[name]())
    return Timing({n: stat(v) for n, v in samples.items()}, len(idle), idle)


def local_window(fn, steps: int, sync=None, clock=time.perf_counter):
    """A window callable for ``alternate``: ``steps`` calls of ``fn`` in this process, ended
    by ``sync()``; returns seconds per step (of ``clock``)."""
    def window():
        t0 = clock()
        for _ in range(steps):
            fn()
        if sync is not None:
            sync()
        return (clock() - t0) / steps
    return window


def time_alternating(fns: dict, steps: int, windows: int = 5, warmup: int = 2,
                     sync=None, clock=time.perf_counter, stat=statistics.median) -> Timing:
    """Time each step callable ``steps`` times per window, alternating; median seconds/step.

    ``sync``: called after the warm-up and to end each window (a GPU's device
    synchronisation, so that queued work is inside the window that launched it).
    ``clock``: ``time.process_time`` counts this process's CPU seconds instead of wall
    seconds (on one thread, what other processes' load changes least). ``stat``: what
    summarises a callable's windows (``min``: the least disturbed one, for a busy machine).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    if sync is not None:
        sync()
    return alternate({name: local_window(fn, steps, sync, clock) for name, fn in fns.items()},
                     windows, stat=stat)


class Worker:
    """A process that answers one JSON request per line (build a workload, time a window)."""

    def __init__(self, argv: list, env: dict | None = None):
        self.proc = subprocess.Popen(argv, env=env, text=True, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)

    @property
    def pid(self) -> int:
        """The worker's process id (for the idle check to leave out)."""
        return self.proc.pid

    def ask(self, **cmd) -> dict:
        """Send one request; return the worker's JSON answer."""
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.proc.args[:2]} died")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"benchmark worker: {answer['error']}")
        return answer

    def close(self) -> None:
        """End the worker (it exits when its input closes)."""
        self.proc.stdin.close()
        self.proc.wait()


# ---------------------------------------------------------------------------- output
def layout_of(shape, strides) -> str:
    """'NCHW' or 'channels_last' when 4-D ``strides`` (in elements) are exactly that dense
    layout of ``shape`` (N, C, H, W); else 'strided'. Size-1 dimensions count too:
    with C = 1 the two layouts differ only in the channel stride."""
    n, c, h, w = shape
    if tuple(strides) == (c * h * w, h * w, w, 1):
        return "NCHW"
    if tuple(strides) == (h * w * c, 1, w * c, c):
        return "channels_last"
    return "strided"


def print_table(rows: list[dict], columns: list[tuple], print_fn=print) -> str:
    """``rows`` as an aligned table; ``columns``: (header, key or callable(row))."""
    lines = [tuple(h for h, _ in columns)]
    for r in rows:
        lines.append(tuple(_fmt(get(r) if callable(get) else r.get(get)) for _, get in columns))
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    out = []
    for j, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    text = "\n".join(out)
    print_fn(text)
    return text


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"


def write_json(record: dict, folder: str) -> str:
    """Write ``record`` to ``folder``/<UTC timestamp>.json atomically; return the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, default=str)
    os.replace(tmp, path)
    return path
