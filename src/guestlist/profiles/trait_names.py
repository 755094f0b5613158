"""Trait names: one spelling per trait, whatever the sender's case style.

`firstName`, `first_name`, `FirstName` and `first name` are one trait, stored as
`first_name`. Segment's reserved traits (https://segment.com/docs/connections/spec/identify/#traits)
map as follows:

| Segment       | guestlist     | meaning                                   |
|---------------|---------------|-------------------------------------------|
| address       | address       | object: street, city, state, postalCode, country |
| age           | age           | number                                    |
| avatar        | avatar        | URL                                       |
| birthday      | birthday      | date (YYYY-MM-DD); a hard fact for merges |
| company       | company       | object: name, id, industry, employee_count, plan |
| createdAt     | created_at    | ISO-8601 date the account was created     |
| description   | description   | text                                      |
| email         | email         | address as given (also an identifier)     |
| firstName     | first_name    | text                                      |
| gender        | gender        | text                                      |
| id            | id            | the sender's id for the user              |
| lastName      | last_name     | text                                      |
| name          | name          | full name                                 |
| phone         | phone         | number as given (also an identifier)      |
| title         | title         | job title                                 |
| username      | username      | text                                      |
| website       | website       | URL                                       |
"""

from __future__ import annotations

import re
from functools import lru_cache

RESERVED_TRAITS = {
    "address": "address",
    "age": "age",
    "avatar": "avatar",
    "birthday": "birthday",
    "company": "company",
    "createdAt": "created_at",
    "description": "description",
    "email": "email",
    "firstName": "first_name",
    "gender": "gender",
    "id": "id",
    "lastName": "last_name",
    "name": "name",
    "phone": "phone",
    "title": "title",
    "username": "username",
    "website": "website",
}

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^0-9a-zA-Z]+")


@lru_cache(maxsize=4096)
def canonical_trait_name(name: str) -> str:
    """`firstName` → `first_name`; `Postal-Code` → `postal_code`; `SKU ID` → `sku_id`."""
    if name in RESERVED_TRAITS:
        return RESERVED_TRAITS[name]
    spaced = _BOUNDARY.sub("_", name.strip())
    return _SEPARATORS.sub("_", spaced).strip("_").lower() or name
