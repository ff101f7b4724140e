"""One module per model operation: norms, rotary embeddings, projections, the MLP and paged attention."""
