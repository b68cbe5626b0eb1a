"""The shop's models."""

from __future__ import annotations

from django.db import models


class Product(models.Model):
    sku = models.CharField(max_length=20, unique=True)
    stock = models.IntegerField()

    class Meta:
        app_label = "django_shop"
