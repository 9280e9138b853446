"""The whole chain from one config: generate → surrogate → unfold/compare → detect → evaluate."""
