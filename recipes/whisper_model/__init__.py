"""The Whisper-encoder CTC model's recipe: encoder caching, head training and bundling."""
