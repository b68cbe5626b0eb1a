"""Django settings of the example shop.

In a project of its own these would be named by pytest-django's ``DJANGO_SETTINGS_MODULE``
ini key; here the examples share the repository's ini file, so conftest.py loads them.
The database's location does not matter: ``pglocks_django`` points it at each test's database.
"""

SECRET_KEY = "example-only"
INSTALLED_APPS = ["django_shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
