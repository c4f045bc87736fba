"""Optimizers step by step vs torch.optim and vs a NumPy re-derivation of Keras 3's formulas;
schedules vs their formulas (and torch's schedulers); state round trips."""

import math

import numpy as np
import pytest
import torch

import dojang as dj
from dojang import optimizers as O
from dojang.optimizers import schedules as S
from tests.helpers import assert_close, fetch

torch.set_num_threads(1)
SHAPES = [(3, 4), (5,), (2, 1, 3)]
STEPS = 5
TINY = 1e-14


def _init(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def _run_dojang(opt, params, grads, device="cpu"):
    ps = [dj.Tensor(p.copy(), requires_grad=True).to(device) for p in params]
    history = []
    for step_grads in grads:
        for p, g in zip(ps, step_grads):
            p.grad = dj.Tensor(g).to(device)
        opt.apply(ps)
        assert all(p.device == device for p in ps)
        history.append([fetch(p).copy() for p in ps])
    return ps, history


def _run_torch(make, params, grads):
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = make(ps)
    history = []
    for step_grads in grads:
        for p, g in zip(ps, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
        history.append([p.detach().numpy().copy() for p in ps])
    return history


TORCH_CASES = [
    (lambda: O.SGD(0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    (lambda: O.SGD(0.1, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    (lambda: O.SGD(0.05, momentum=0.8, nesterov=True),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True)),
    (lambda: O.Adam(0.01, epsilon=TINY), lambda ps: torch.optim.Adam(ps, lr=0.01, eps=TINY)),
    (lambda: O.Adam(0.01, beta_1=0.8, beta_2=0.9, epsilon=TINY, amsgrad=True),
     lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), eps=TINY, amsgrad=True)),
    (lambda: O.AdamW(0.01, weight_decay=0.1, epsilon=TINY),
     lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, eps=TINY)),
    (lambda: O.RMSprop(0.01, rho=0.9, epsilon=TINY**2),
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=TINY)),
    (lambda: O.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True, epsilon=TINY**2),
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.8, eps=TINY, momentum=0.5,
                                    centered=True)),
    (lambda: O.Adagrad(0.1, initial_accumulator_value=0.2, epsilon=TINY**2),
     lambda ps: torch.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.2, eps=TINY)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", range(len(TORCH_CASES)))
def test_matches_torch(case, dtype, device, kernels):
    make_dj, make_torch = TORCH_CASES[case]
    params, grads = _init(dtype, seed=case)
    ps, ours = _run_dojang(make_dj(), params, grads, device)
    theirs = _run_torch(make_torch, params, grads)
    for step_ours, step_theirs in zip(ours, theirs):
        for a, b in zip(step_ours, step_theirs):
            assert_close(a, b, dtype)
    assert all(p.dtype == dtype for p in ps)


# ---------------------------------------------------------------- NumPy re-derivation of Keras 3
def _keras_step(kind, hp, p, g, s, lr, t):
    """One update of Keras 3's optimizers, written from their formulas on plain arrays."""
    if kind == "sgd":
        mu = hp.get("momentum", 0.0)
        if not mu:
            return p - lr * g
        s["m"] = mu * s.get("m", 0 * p) - lr * g
        return p + (mu * s["m"] - lr * g if hp.get("nesterov") else s["m"])
    if kind == "adam":
        b1, b2, eps = hp.get("beta_1", 0.9), hp.get("beta_2", 0.999), hp.get("epsilon", 1e-7)
        s["m"] = s.get("m", 0 * p) + (g - s.get("m", 0 * p)) * (1 - b1)
        s["v"] = s.get("v", 0 * p) + (g * g - s.get("v", 0 * p)) * (1 - b2)
        v = s["v"]
        if hp.get("amsgrad"):
            s["vh"] = np.maximum(s.get("vh", 0 * p), v)
            v = s["vh"]
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        return p - alpha * s["m"] / (np.sqrt(v) + eps)
    if kind == "rmsprop":
        rho, mu, eps = hp.get("rho", 0.9), hp.get("momentum", 0.0), hp.get("epsilon", 1e-7)
        s["v"] = rho * s.get("v", 0 * p) + (1 - rho) * g * g
        denom = s["v"] + eps
        if hp.get("centered"):
            s["a"] = rho * s.get("a", 0 * p) + (1 - rho) * g
            denom = s["v"] - s["a"] ** 2 + eps
        inc = lr * g / np.sqrt(denom)
        if mu:
            s["mom"] = mu * s.get("mom", 0 * p) + inc
            return p - s["mom"]
        return p - inc
    if kind == "adagrad":
        s["acc"] = s.get("acc", 0 * p + hp.get("initial_accumulator_value", 0.1)) + g * g
        return p - lr * g / np.sqrt(s["acc"] + hp.get("epsilon", 1e-7))
    raise AssertionError(kind)


def _keras_run(kind, hp, params, grads, lrs, wd=None, clipnorm=None, clipvalue=None,
               global_clipnorm=None):
    ps = [p.astype(np.float64) for p in params]
    states = [{} for _ in ps]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        gs = [g.astype(np.float64) for g in step_grads]
        if clipvalue is not None:
            gs = [np.clip(g, -clipvalue, clipvalue) for g in gs]
        if clipnorm is not None:
            gs = [g * clipnorm / max(np.linalg.norm(g), clipnorm) for g in gs]
        if global_clipnorm is not None:
            total = math.sqrt(sum(np.sum(g * g) for g in gs))
            gs = [g * global_clipnorm / max(total, global_clipnorm) for g in gs]
        lr = lrs[t - 1]
        if wd:
            ps = [p - p * wd * lr for p in ps]
        ps = [_keras_step(kind, hp, p, g, s, lr, t) for p, g, s in zip(ps, gs, states)]
        history.append(ps)
    return history


KERAS_CASES = [
    ("sgd", O.SGD, {"momentum": 0.9}, {}),
    ("sgd", O.SGD, {"momentum": 0.7, "nesterov": True}, {"weight_decay": 0.05}),
    ("sgd", O.SGD, {}, {"clipvalue": 0.5}),
    ("adam", O.Adam, {"epsilon": 0.1}, {"clipnorm": 1.0}),
    ("adam", O.Adam, {"amsgrad": True, "beta_2": 0.9, "epsilon": 0.05}, {}),
    ("adam", O.AdamW, {"epsilon": 0.01}, {"weight_decay": 0.2, "global_clipnorm": 2.0}),
    ("rmsprop", O.RMSprop, {"epsilon": 0.1, "momentum": 0.3}, {}),
    ("rmsprop", O.RMSprop, {"centered": True, "epsilon": 0.5}, {"clipnorm": 0.8}),
    ("adagrad", O.Adagrad, {"epsilon": 0.3}, {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", range(len(KERAS_CASES)))
def test_matches_keras_formulas_with_schedule(case, dtype, device, kernels):
    """Non-tiny epsilons and a decaying learning rate, where torch's formulations differ."""
    kind, cls, hp, extra = KERAS_CASES[case]
    schedule = S.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    params, grads = _init(dtype, seed=10 + case)
    opt = cls(learning_rate=schedule, **hp, **extra)
    _, ours = _run_dojang(opt, params, grads, device)
    wd = extra.get("weight_decay", 0.004 if cls is O.AdamW else None)
    want = _keras_run(kind, hp, params, grads, [schedule(t) for t in range(STEPS)], wd=wd,
                      **{k: v for k, v in extra.items() if k != "weight_decay"})
    for step_ours, step_want in zip(ours, want):
        for a, b in zip(step_ours, step_want):
            assert_close(a, b, dtype)
    assert opt.iterations == STEPS and opt.learning_rate == schedule(STEPS)


def test_in_place_float32_and_skipped_params():
    params, grads = _init(np.float32)
    ps = [dj.Tensor(p.copy(), requires_grad=True) for p in params]
    buffers = [p.data for p in ps]
    opt = O.Adam(0.1)
    ps[0].grad = dj.Tensor(grads[0][0])
    opt.apply(ps)
    assert all(p.data is b and p.data.dtype == np.float32 for p, b in zip(ps, buffers))
    np.testing.assert_array_equal(ps[1].numpy(), params[1])  # no grad: untouched
    assert not np.allclose(ps[0].numpy(), params[0])
    with pytest.raises(ValueError, match="Expected the 3 parameters this optimizer was built "
                                         "with. Received: 2 parameters"):
        opt.apply(ps[:2])


@pytest.mark.parametrize("make", [
    lambda: O.SGD(0.1, momentum=0.9, nesterov=True), lambda: O.Adam(0.01, amsgrad=True),
    lambda: O.RMSprop(0.01, momentum=0.5, centered=True), lambda: O.Adagrad(0.1),
    lambda: O.AdamW(S.CosineDecay(0.01, 10, warmup_target=0.1, warmup_steps=2)),
])
@pytest.mark.parametrize("before_build", [True, False])
def test_state_round_trip(make, before_build):
    params, grads = _init(np.float32, seed=3)
    first = make()
    ps, _ = _run_dojang(first, params, grads[:3])
    state = first.get_state()
    assert state["iterations"] == 3 and all(isinstance(v, np.ndarray) for v in state.values())
    second = O.get(O.serialize(first))
    ps2 = [dj.Tensor(p.numpy().copy(), requires_grad=True) for p in ps]
    if not before_build:
        second.build(ps2)
    second.set_state(state)
    if before_build:
        assert second.get_state().keys() == state.keys()
    for step_grads in grads[3:]:
        for a, b, g in zip(ps, ps2, step_grads):
            a.grad, b.grad = dj.Tensor(g), dj.Tensor(g)
        first.apply(ps)
        second.apply(ps2)
    for a, b in zip(ps, ps2):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_set_state_errors():
    opt = O.Adam()
    with pytest.raises(ValueError, match="Adam.set_state: Expected an 'iterations' entry"):
        opt.set_state({})
    with pytest.raises(ValueError, match="unexpected key '0/accumulator'"):
        opt.set_state({"iterations": np.array(1), "0/accumulator": np.zeros(2)})
    with pytest.raises(ValueError, match="Expected slots"):
        opt.set_state({"iterations": np.array(1), "0/momentum": np.zeros(2)})
    p = dj.Tensor(np.zeros(3, np.float32), requires_grad=True)
    opt.build([p])
    with pytest.raises(ValueError, match=r"'0/momentum': Expected shape \(3,\)"):
        opt.set_state({"iterations": np.array(1), "0/momentum": np.zeros(2),
                       "0/velocity": np.zeros(2)})


def test_learning_rate_property_and_errors():
    opt = O.SGD(0.1)
    opt.learning_rate = 0.05
    assert opt.learning_rate == 0.05 and opt.get_config()["learning_rate"] == 0.05
    sched = O.SGD(S.StepDecay(0.1, 2))
    with pytest.raises(TypeError, match="SGD: the learning rate follows the schedule"):
        sched.learning_rate = 0.2
    with pytest.raises(ValueError, match="Expected at most one of clipnorm, clipvalue"):
        O.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match=r"SGD: Expected momentum to be a number in \[0.0, "
                                         r"1.0\)\. Received: momentum=1.0"):
        O.SGD(momentum=1.0)
    with pytest.raises(ValueError, match="Unknown optimizer: 'adamax'"):
        O.get("adamax")
    for name, cls in [("sgd", O.SGD), ("adam", O.Adam), ("adamw", O.AdamW),
                      ("rmsprop", O.RMSprop), ("adagrad", O.Adagrad), ("Adam", O.Adam)]:
        assert type(O.get(name)) is cls
    assert O.AdamW().weight_decay == 0.004 and O.Adam().epsilon == 1e-7
    config = O.RMSprop(0.02, rho=0.8, clipnorm=2.0).get_config()
    again = O.RMSprop.from_config(config)
    assert again.get_config() == config


# ---------------------------------------------------------------- schedules
def test_exponential_step_piecewise():
    s = S.ExponentialDecay(0.5, decay_steps=3, decay_rate=0.2)
    st = S.ExponentialDecay(0.5, decay_steps=3, decay_rate=0.2, staircase=True)
    for t in range(10):
        assert s(t) == pytest.approx(0.5 * 0.2 ** (t / 3))
        assert st(t) == pytest.approx(0.5 * 0.2 ** (t // 3))
    pw = S.PiecewiseConstantDecay([3, 6], [1.0, 0.5, 0.25])
    assert [pw(t) for t in range(9)] == [1.0] * 4 + [0.5] * 3 + [0.25] * 2
    with pytest.raises(ValueError, match=r"Expected len\(values\) == len\(boundaries\) \+ 1"):
        S.PiecewiseConstantDecay([3], [1.0])
    p = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([p], lr=0.3)
    steplr = torch.optim.lr_scheduler.StepLR(topt, step_size=4, gamma=0.5)
    ours = S.StepDecay(0.3, step_size=4, gamma=0.5)
    for t in range(12):
        assert ours(t) == pytest.approx(steplr.get_last_lr()[0], rel=1e-12)
        topt.step()
        steplr.step()


def test_cosine_decay():
    s = S.CosineDecay(0.2, decay_steps=8, alpha=0.1)
    for t in range(12):
        frac = min(t, 8) / 8
        assert s(t) == pytest.approx(0.2 * (0.9 * 0.5 * (1 + math.cos(math.pi * frac)) + 0.1))
    w = S.CosineDecay(0.0, decay_steps=10, warmup_target=0.1, warmup_steps=4)
    assert [w(t) for t in range(5)] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
    for t in range(4, 20):
        frac = min(t - 4, 10) / 10
        assert w(t) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * frac)))


@pytest.mark.parametrize("strategy, three_phase", [("cos", False), ("linear", False),
                                                   ("cos", True)])
def test_one_cycle_matches_torch(strategy, three_phase):
    total = 23
    p = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        topt, max_lr=0.4, total_steps=total, pct_start=0.25, div_factor=10.0,
        final_div_factor=100.0, anneal_strategy=strategy, three_phase=three_phase,
        cycle_momentum=False)
    ours = S.OneCycle(0.4, total, pct_start=0.25, div_factor=10.0, final_div_factor=100.0,
                      anneal_strategy=strategy, three_phase=three_phase)
    for t in range(total):
        assert ours(t) == pytest.approx(sched.get_last_lr()[0], rel=1e-12, abs=1e-15)
        topt.step()
        sched.step()
    assert ours(total + 5) == ours(total - 1)


@pytest.mark.parametrize("sched", [
    S.ExponentialDecay(0.1, 5, 0.9, staircase=True), S.StepDecay(0.1, 3),
    S.PiecewiseConstantDecay([2, 5], [0.1, 0.01, 0.001]),
    S.CosineDecay(0.0, 100, alpha=0.1, warmup_target=0.1, warmup_steps=10),
    S.OneCycle(0.1, 50, three_phase=True),
])
def test_schedule_config_round_trip(sched):
    again = S.deserialize(S.serialize(sched))
    assert type(again) is type(sched) and again.get_config() == sched.get_config()
    assert [again(t) for t in range(0, 60, 7)] == [sched(t) for t in range(0, 60, 7)]
