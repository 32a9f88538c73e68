"""The pair import pipeline: readers (file -> raw rows), records (raw row -> PairRecord), writer (records -> DB).

The only entry point for callers is ``annotation.imports.importer.pairs_import`` (uploads go through
``annotation.services.imports.upload_import``).
"""
