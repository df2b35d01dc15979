"""WSGI entry point, also what ``runserver`` serves (``WSGI_APPLICATION``).

OpenTelemetry is set up here, before Django builds its middleware chain:
``otel_carbon.configure()`` (providers, exporters from ``OTEL_*``, our span processor and
meter), then the official Django instrumentation, which adds its middleware.

    cd examples/django_app
    OTEL_TRACES_EXPORTER=console python manage.py runserver --noreload 127.0.0.1:8000
    gunicorn -w 2 -b 127.0.0.1:8000 carbon_site.wsgi     # or a production server

With ``opentelemetry-instrument`` instead, drop both calls: the Django and ``carbon``
instrumentors are then loaded from their entry points.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carbon_site.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402
from opentelemetry.instrumentation.django import DjangoInstrumentor  # noqa: E402

import otel_carbon  # noqa: E402

SETUP = otel_carbon.configure(service_name="django-example")
DjangoInstrumentor().instrument()

application = get_wsgi_application()
