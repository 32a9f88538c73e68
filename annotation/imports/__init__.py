"""The pair import pipeline: readers (file -> raw rows), records (raw row -> PairRecord), writer (records -> DB).

The only entry point for callers is ``annotation.services.imports.pairs_import``.
"""
