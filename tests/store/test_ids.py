"""Record ids: 15 characters plus Salesforce's case-safe suffix, unique per process by a node claimed
from the store, growing with time; and the ids clients send read back in either form."""

from __future__ import annotations

import asyncio
import string

import pytest
from casegate.store import ids
from casegate.store.database import Database
from casegate.store.ids import MalformedId, claim_node, new_id, parse_id, suffix


@pytest.mark.parametrize(
    ("id15", "expected"),
    [
        # worked by hand: 001A0|00000|6Vm9r → bit 3 (I), none (A), bit 1 (C)
        ("001A0000006Vm9r", "001A0000006Vm9rIAC"),
        ("003A0000005QB3A", "003A0000005QB3AIAW"),
        ("aaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaAAA"),
        ("AAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAA555"),
    ],
)
def test_suffix_marks_the_capitals_of_each_five_characters(id15: str, expected: str) -> None:
    assert id15 + suffix(id15) == expected


def test_new_ids_are_18_characters_with_the_objects_prefix_and_a_valid_suffix() -> None:
    for obj, prefix in ids.PREFIX.items():
        value = new_id(obj)
        assert len(value) == 18 and value.startswith(prefix)
        assert value[15:] == suffix(value[:15])
        assert set(value) <= set(string.ascii_letters + string.digits)


def test_ids_of_one_process_never_repeat_and_grow_even_within_one_millisecond() -> None:
    made = [new_id("CaseFeed") for _ in range(50_000)]  # far more than 1,000 a millisecond
    assert len(set(made)) == len(made)
    assert all(m[15:] == suffix(m[:15]) for m in made)
    bodies = [m[6:15] for m in made]
    assert bodies == sorted(bodies)  # base-62 digits sort as they count: 0-9 < A-Z < a-z in ASCII


@pytest.mark.parametrize("given", ["500Abc0k2Fq81Zx", "500Abc0k2Fq81Zx" + suffix("500Abc0k2Fq81Zx")])
def test_parse_id_takes_the_15_and_the_18_character_forms(given: str) -> None:
    assert parse_id(given, "Case") == "500Abc0k2Fq81Zx" + suffix("500Abc0k2Fq81Zx")


def test_parse_id_restores_the_case_an_18_character_id_lost() -> None:
    value = new_id("Contact")
    assert parse_id(value.lower(), "Contact") == value
    assert parse_id(value.upper(), "Contact") == value


@pytest.mark.parametrize(
    ("given", "obj", "words"),
    [
        ("500abc", "Case", "incorrect type"),
        ("500Abc0k2Fq81Zx!!!", "Case", "incorrect type"),
        (12345, "Case", "incorrect type"),
        ("003Abc0k2Fq81Zx", "Case", "Case ID"),
        ("", None, "incorrect type"),
    ],
)
def test_parse_id_refuses_what_is_not_an_id_of_the_object(given: object, obj: str | None, words: str) -> None:
    with pytest.raises(MalformedId, match=words):
        parse_id(given, obj)


def test_an_id_from_before_suffixes_is_taken_as_it_is() -> None:
    legacy = "500" + "0k2Fq81" + "zQ9xWv1k"  # 3 + 7 time + 8 random characters, the old form
    assert parse_id(legacy, "Case") == legacy


async def test_processes_claim_distinct_nodes_from_the_store(db: Database) -> None:
    async def claim() -> int:
        async with db.engine.begin() as conn:
            return await claim_node(conn)

    try:
        nodes = [await claim() for _ in range(3)] + list(await asyncio.gather(*(claim() for _ in range(4))))
        assert len(set(nodes)) == 7
        assert all(0 <= n < ids.CLAIMED_NODES for n in nodes)
        last = await claim()
        assert last not in nodes
        assert new_id("Case")[3:6] == ids._base62(last, ids.NODE_CHARS)
    finally:
        ids._source.set_node(ids.CLAIMED_NODES)  # back to the band kept for processes that never claim
