"""The embedded default model's recipe: synthetic data, training, export and evaluation."""
