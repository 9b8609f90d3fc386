"""Image operations, one module per family: geometry, filters, color, compose.

Every op follows one calling convention: ``op(src, ..., out=None, stream=None)`` with an
Image or ImageBatch in; ``out=src`` works in place where the shape allows; a given ``out``
is reused without allocation (its logical shape is set, growing only when needed).
"""
