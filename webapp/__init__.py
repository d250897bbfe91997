"""The DLLM2Rec Studio service: Django + DRF over the `distill` library."""
