"""LoRA adapters for the served omni LM: peft folders in and out, exact composition, the
modality router, and the CPU multi-LoRA ops plugin for vLLM. Pure (no Ray): importable by
tests and by every vLLM process."""
