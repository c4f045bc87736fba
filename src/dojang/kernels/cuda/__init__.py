"""dojang's GPU kernels: CUDA C generated per dtype and rank, launched through CuPy.

``source`` writes the kernels (one thread per output element, grid-stride loops, no
atomics: deterministic by construction), ``launch`` sizes the grids, ``engine`` compiles
and launches them (CuPy's ``RawKernel`` on a GPU), and ``ops`` gives them the same
contracts as the compiled CPU kernels, so each registers as the ``cuda`` variant of its
op for the CuPy backend. Nothing here imports CuPy until a kernel is launched.
"""
