"""Kernels of the engine: Triton GPU kernels and CPU kernels (numba, torch). Import submodules
explicitly; the Triton ones import triton."""
