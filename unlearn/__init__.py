"""Multimodal machine unlearning on the CLEAR benchmark."""
