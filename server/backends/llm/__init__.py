"""What every LLM backend shares: tensor contracts, request translation, detokenization, responses."""
