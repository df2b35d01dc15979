"""Settings of the minimal example project: no database, no templates, one app-less view.

Set ``DJANGO_SECRET_KEY`` outside development; ``DJANGO_DEBUG=1`` turns debug on.
"""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "otel-carbon-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS: list = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]  # DjangoInstrumentor adds its own
ROOT_URLCONF = "carbon_site.urls"
WSGI_APPLICATION = "carbon_site.wsgi.application"  # used by runserver too
DATABASES: dict = {}
USE_TZ = True
