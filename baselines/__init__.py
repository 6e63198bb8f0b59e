"""Published baselines: the base model as is, Cohen et al.'s Gaussian-augmentation fine-tuning, denoisers."""
