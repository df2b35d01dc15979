"""A minimal Django project whose requests carry energy and CO2e (see ``wsgi.py``)."""
