import numpy as np

import dojang as dj
from tests.helpers import gradcheck, torch_oracle


def test_linear_gradcheck():
    rng = np.random.default_rng(0)
    gradcheck(lambda x, w, b: dj.ops.linear(x, w, b), rng.standard_normal((3, 4)),
              rng.standard_normal((4, 2)), rng.standard_normal(2))


def test_matmul_oracle():
    import torch

    rng = np.random.default_rng(1)
    torch_oracle(lambda a, b: a @ b, lambda a, b: a @ b, rng.standard_normal((2, 3, 4)),
                 rng.standard_normal((4, 5)))
    del torch
