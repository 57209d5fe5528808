"""Content engine: prompts, output schemas, the offline composer and the quality gate.

Pure Python (no I/O): `prompts.render` builds what a provider sends, `schemas.SCHEMAS` is what
it must return, `offline.compose` writes the same shapes without a model, and
`quality.evaluate` scores an article before it is stored.
"""
