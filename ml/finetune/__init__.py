"""Fine-tuning of the ML core's models: data validation, classification (full and LoRA)."""
