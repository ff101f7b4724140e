"""Model families by Hugging Face architecture name."""
