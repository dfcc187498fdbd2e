"""The app's serving side: one base model with switchable adapters, its columns, examples and upload decoding."""
