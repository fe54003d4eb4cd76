"""Turn the released CXR datasets into LLaMA-Factory (SFT) and EasyR1 (GRPO) datasets."""
