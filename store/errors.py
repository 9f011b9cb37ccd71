"""Errors of the case store, split by what the caller should do: retry later or give up."""

from __future__ import annotations


class StoreError(Exception):
    """Root of case store errors."""


class TemporaryStoreError(StoreError):
    """The store cannot be written now (database down, locked); retry without committing."""


class PermanentStoreError(StoreError):
    """This message can never be written as it is (bad data, constraint); dead-letter it."""


class CaseNotFound(StoreError):
    def __init__(self, number: str):
        super().__init__(f"no case with CaseNumber {number}")
        self.number = number
