"""Kernels of the tokenize stage: the numba CPU beam-LUT RVQ encoder and the Triton GPU encoder.
Import submodules explicitly; ``rvq_triton`` imports triton."""
