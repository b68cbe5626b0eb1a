"""A small Django app for examples/django_shop/test_shop.py: products with stock."""
