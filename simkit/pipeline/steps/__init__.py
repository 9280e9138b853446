"""The stages of the default chain, one module per job; :mod:`simkit.pipeline.chain`
declares their order."""
