"""Anomaly detectors: AE/VAE (and CWoLa/supervised classifiers), label strategies that
choose training events without truth labels, training through :func:`simkit.nn.train`,
and LHC-Olympics-style evaluation (ROC, AUC, SIC, a bump hunt).

>>> from detectors.labels import STRATEGIES
>>> STRATEGIES
('all', 'sideband', 'tag-and-probe', 'truth')
"""
