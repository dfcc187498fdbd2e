"""Training: option classes, the unlearning trainer, forget/retain pairing, and the fine-tune and unlearn runs."""
