"""GPU kernels of the engine (Triton). Import submodules explicitly; they import triton."""
