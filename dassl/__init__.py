"""Dassl's import surface (config, engine, data, optim, evaluation, utils), written for this project.

Importing the package itself is cheap: subpackages load torch and friends only when imported.
"""
__version__ = "0.6.3"
