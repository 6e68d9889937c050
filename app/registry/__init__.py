"""The registry: models, versions, aliases and tags over localhost REST (Flask on waitress)."""
