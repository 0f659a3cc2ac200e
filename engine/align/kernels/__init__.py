"""Kernels of the align stage: batched DTW in torch and Triton. Import submodules explicitly;
``dtw_triton`` imports triton."""
