"""Feed-forward concepts: PCA of FFN down-projections read through the vocabulary, annotated and compared."""
