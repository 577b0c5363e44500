"""BERT feature pipeline: frozen TF-Hub encoder -> cached pooled features -> small Keras head."""
