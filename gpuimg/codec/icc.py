"""ICC profiles as bytes: :mod:`gpuimg.meta.icc`, under the name first published here."""

from ..meta.icc import color_space, description, problem

__all__ = ["problem", "description", "color_space"]
