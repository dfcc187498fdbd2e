"""The offline default: mini-CLEAR, tiny models, random adapters and random-weight checkpoints."""
