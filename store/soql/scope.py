"""One SELECT's FROM: its object, the parents its field paths reach (each joined once, as a LEFT OUTER
JOIN on an alias of its own, so a missing parent gives nulls, not a missing row) and field paths resolved
to SQL expressions with the facts the rest of the translation needs (type, nullability, API names).

`Owner` is polymorphic: both a User alias and a Queue alias are joined on OwnerId, and each field is
taken from whichever matched (ids are unique across tables: the key prefix tells 005 from 00G).

Aliases are made once per place in a query (the root of an object's SELECT, a parent at the end of a
relationship path from it) and then reused by every query, as building one (`aliased` over 40 columns)
cost more than the rest of the translation; an alias is immutable, and within one SELECT each place
has its own, so the SQL is the same as with fresh aliases. (Child subqueries are statements of their
own; a future nested SELECT of the same object inside one statement would need aliases keyed apart.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from casegate.store.soql.errors import InvalidField, Position
from casegate.store.soql.schema import OBJECTS, POLYMORPHIC_FIELDS, POLYMORPHIC_TYPE, Field, Kind, Parent, SObject
from casegate.store.soql.syntax import FieldPath
from sqlalchemy import ColumnElement, FromClause, case, func, literal, null, outerjoin
from sqlalchemy.orm import aliased

MAX_PATH_DEPTH = 5
"""Relationships in one field path (Salesforce: five levels of parents)."""
MAX_JOINS = 35
"""Distinct parent relationships in one SELECT (Salesforce allows 55; each is a join here)."""

_NO_RELATIONSHIP = ("Didn't understand relationship '{}' in field path. If you are attempting to use a custom "
                    "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                    "your WSDL or the describe call for the appropriate names.")
_NO_COLUMN = ("No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to append "
              "the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
              "appropriate names.")


@dataclass(frozen=True, slots=True)
class Operand:
    """A field path resolved: its SQL expression and what it is."""

    expression: ColumnElement[Any]
    kind: Kind
    nullable: bool
    """Can be null: a nullable column, or any field of a parent (the parent may be missing)."""
    exact: bool
    long: bool
    """A long text: can be selected, not filtered, sorted or grouped."""
    name: str
    """The field's API name (`Email` of `Contact.Email`)."""
    relationships: tuple[str, ...]
    """The API names of the relationships on the way (`("Contact",)`)."""

    @property
    def path(self) -> str:
        return ".".join((*self.relationships, self.name))


@dataclass(frozen=True, slots=True)
class Target:
    """A joined parent: one entity, or one per type for a polymorphic relationship."""

    obj: SObject | None
    """None for a polymorphic parent."""
    entities: dict[str, Any]
    """Object name → its alias in this SELECT."""
    relationships: tuple[str, ...]


class Scope:
    def __init__(self, obj: SObject, source: str):
        self.obj = obj
        self.source = source
        self.root: Any = _alias(obj.name, (), obj.name)
        self._joins: list[tuple[Any, ColumnElement[bool]]] = []
        self._targets: dict[tuple[str, ...], Target] = {}

    def from_clause(self) -> FromClause:
        joined: Any = self.root
        for entity, onclause in self._joins:
            joined = outerjoin(joined, entity, onclause)
        return joined  # type: ignore[no-any-return]

    def field(self, path: FieldPath) -> Operand:
        *relationships, name = path.parts
        if len(relationships) > MAX_PATH_DEPTH:
            raise InvalidField(f"A field path can reach at most {MAX_PATH_DEPTH} relationships: {path.text}",
                               path.position, self.source)
        target = self.target(tuple(relationships), path.position)
        if target is None:
            return _operand(self.obj, self.root, name, (), path.position, self.source)
        if target.obj is not None:
            return _operand(target.obj, target.entities[target.obj.name], name, target.relationships, path.position,
                            self.source, via_parent=True)
        return _polymorphic(target, name, path.position, self.source)

    def target(self, relationships: tuple[str, ...], position: Position) -> Target | None:
        """The parent a chain of relationship names reaches, joined on first use; None for none."""
        if not relationships:
            return None
        key = tuple(r.lower() for r in relationships)
        if key in self._targets:
            return self._targets[key]
        above = self.target(relationships[:-1], position)
        obj, entity = (self.obj, self.root) if above is None else (above.obj, None)
        if above is not None and above.obj is not None:
            entity = above.entities[above.obj.name]
        parent = obj.parents.get(key[-1]) if obj is not None else None
        if obj is None or parent is None:
            raise InvalidField(_NO_RELATIONSHIP.format(relationships[-1]), position, self.source)
        if len(self._targets) >= MAX_JOINS:
            raise InvalidField(f"A query can reach at most {MAX_JOINS} parent relationships", position, self.source)
        target = self._join(obj, entity, parent, (*(above.relationships if above else ()), parent.name))
        self._targets[key] = target
        return target

    def _join(self, obj: SObject, entity: Any, parent: Parent, names: tuple[str, ...]) -> Target:
        key = obj.fields[parent.key.lower()].expression(entity)
        entities: dict[str, Any] = {}
        for name in parent.targets:
            alias: Any = _alias(self.obj.name, tuple(n.lower() for n in names), name)
            entities[name] = alias
            self._joins.append((alias, alias.Id == key))
        single = OBJECTS[parent.targets[0].lower()] if len(parent.targets) == 1 else None
        return Target(single, entities, names)


@lru_cache(maxsize=2048)
def _alias(root: str, path: tuple[str, ...], name: str) -> Any:
    """The alias of object `name` at relationship `path` (lower case) from a SELECT of `root`."""
    return aliased(OBJECTS[name.lower()].model)


def _operand(obj: SObject, entity: Any, name: str, relationships: tuple[str, ...], position: Position, source: str,
             via_parent: bool = False) -> Operand:
    f: Field | None = obj.fields.get(name.lower())
    if f is None:
        raise InvalidField(_NO_COLUMN.format(name, obj.name), position, source)
    return Operand(f.expression(entity), f.kind, f.nullable or via_parent, f.exact, f.long, f.name, relationships)


def _polymorphic(target: Target, name: str, position: Position, source: str) -> Operand:
    """A field of a polymorphic parent: from whichever target's join matched."""
    objects = {t: OBJECTS[t.lower()] for t in target.entities}
    if name.lower() == "type":
        whens = [(entity.Id.is_not(None), literal(t)) for t, entity in target.entities.items()]
        return Operand(case(*whens, else_=null()), "string", True, True, False, "Type", target.relationships)
    api = next((n for n in POLYMORPHIC_FIELDS if n.lower() == name.lower()), None)
    present = [(t, objects[t].fields[name.lower()]) for t in target.entities
               if api is not None and name.lower() in objects[t].fields]
    if not present:
        raise InvalidField(_NO_COLUMN.format(name, POLYMORPHIC_TYPE), position, source)
    first = present[0][1]
    if first.name == "Id":
        expression: ColumnElement[Any] = func.coalesce(*(target.entities[t].Id for t, _ in present))
    else:
        expression = case(*((target.entities[t].Id.is_not(None), f.expression(target.entities[t]))
                             for t, f in present), else_=null())
    return Operand(expression, first.kind, True, first.exact, first.long, first.name, target.relationships)
