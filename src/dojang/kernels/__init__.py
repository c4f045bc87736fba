"""Pure array math for convolution and pooling (NumPy or CuPy, picked from the data).

Notation, used by every module below this one:

    N           batch size
    C           channels (C_in, C_out for a convolution; G groups, Cg = C_in / G)
    H, W        input height and width (D, H, W for 3-d; W for 1-d)
    KH, KW      kernel height and width
    SH, SW      strides
    DH, DW      dilations
    PH, PW      padding (each a (before, after) pair; before = top/left)
    OH, OW      output height and width:
                OH = floor((H + PH_before + PH_after - DH*(KH-1) - 1) / SH) + 1

Kernels are written once for any number of spatial dimensions; "H, W" above stand for
the spatial axes in general. Nothing here knows about Tensor. ``jit`` holds compiled
(numba) versions of the hot loops for NumPy arrays; the array code in the other modules
is the reference they are tested against and the path taken without numba or on CuPy.
"""
