"""The Hugging Face Hub: resolving ids and revisions, model cards, and pushing checkpoints."""
