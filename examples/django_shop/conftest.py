"""Django for the shop example only: settings loaded, and migrations as the run's schema.

A Django project sets ``DJANGO_SETTINGS_MODULE`` and ``pglocks_schema = django`` in its ini
file instead; these examples share the repository's ini with suites that have no Django, so
the settings are configured here, when a test of this folder first needs its database (and
test_shop.py imports the models only then, in its ``shop`` fixture).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pglocks_schema() -> list[str]:
    """This folder's template: the shop's migrations, run once per run."""
    import django
    from django.conf import settings

    from django_shop import settings as shop_settings

    if not settings.configured:
        settings.configure(
            **{name: getattr(shop_settings, name) for name in dir(shop_settings) if name.isupper()}
        )
        django.setup()
    return ["django"]
