"""The judge plugin's pieces: its prompt, and reading a verdict out of a small model's reply."""
