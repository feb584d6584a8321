"""Text -> vectors: encoders, their CPU scheduling (threads), model folders (models), the native e5 engine, the embedding cache."""
