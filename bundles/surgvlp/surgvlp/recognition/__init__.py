"""From embeddings to answers: prompt sets, scoring, temporal decoding, timelines, the cache, the adapter, evaluation."""
