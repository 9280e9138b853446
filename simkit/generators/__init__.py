"""Event generators: analytic toy problems (``toy``) and the Pythia 8 reference chain."""
