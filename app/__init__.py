"""ModelDepot: keep and serve machine-learning models on machines with no internet."""

__version__ = "0.1.0"
