"""Who the simulated people are, and how each source system gets their details wrong.

:func:`draw_identities` gives every person one true identity (name, e-mail, phones,
address, birth date) and puts some of them in households: members share surname,
address and landline but not first name or e-mail, the hard negatives of identity
resolution. :func:`source_records` then writes each person into the source systems
(CRM, web-shop accounts, store loyalty) with noise at known rates, and returns the truth:
which person each source record belongs to and which noise it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

NICKNAMES = {
    "Robert": "Bob",
    "William": "Bill",
    "Elizabeth": "Liz",
    "Katherine": "Kate",
    "Michael": "Mike",
    "Margaret": "Maggie",
    "James": "Jim",
    "Jennifer": "Jenny",
    "Richard": "Rick",
    "Alexandra": "Alex",
    "Thomas": "Tom",
    "Susan": "Sue",
    "Daniel": "Dan",
    "Patricia": "Pat",
    "Joseph": "Joe",
    "Victoria": "Vicky",
    "Christopher": "Chris",
    "Rebecca": "Becky",
    "Matthew": "Matt",
    "Samantha": "Sam",
}
FIRST_NAMES = {
    "female": [
        "Elizabeth",
        "Katherine",
        "Margaret",
        "Jennifer",
        "Alexandra",
        "Susan",
        "Patricia",
        "Victoria",
        "Rebecca",
        "Samantha",
        "Olivia",
        "Amelia",
        "Isla",
        "Ava",
        "Emily",
        "Sophie",
        "Grace",
        "Chloe",
        "Lucy",
        "Hannah",
    ],
    "male": [
        "Robert",
        "William",
        "Michael",
        "James",
        "Richard",
        "Thomas",
        "Daniel",
        "Joseph",
        "Christopher",
        "Matthew",
        "Oliver",
        "George",
        "Harry",
        "Jack",
        "Noah",
        "Leo",
        "Oscar",
        "Arthur",
        "Henry",
        "Samuel",
    ],
}
LAST_NAMES = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "James",
    "Phillips",
    "Mason",
    "Mitchell",
    "Rose",
    "Davis",
    "Rodriguez",
    "Cox",
    "Alexander",
    "Morgan",
    "Moore",
    "Martin",
    "Price",
    "Bell",
    "Hughes",
    "Cooper",
    "Ward",
]
STREETS = [
    "High Street",
    "Station Road",
    "Main Street",
    "Park Road",
    "Church Road",
    "Church Street",
    "London Road",
    "Victoria Road",
    "Green Lane",
    "Manor Road",
    "Kings Road",
    "Queens Road",
    "New Road",
    "Mill Lane",
    "School Lane",
]
CITIES = [
    ("London", "SW1A"),
    ("Manchester", "M1"),
    ("Birmingham", "B1"),
    ("Leeds", "LS1"),
    ("Glasgow", "G1"),
    ("Bristol", "BS1"),
    ("Liverpool", "L1"),
    ("Sheffield", "S1"),
    ("Edinburgh", "EH1"),
    ("Cardiff", "CF10"),
]
DOMAINS = [
    "gmail.com",
    "yahoo.co.uk",
    "outlook.com",
    "hotmail.co.uk",
    "icloud.com",
    "btinternet.com",
]
SYSTEMS = {"crm": 0.9, "webshop": 0.75, "loyalty": 0.6}
"""Chance that a person has a record in each system (everyone has at least one)."""


@dataclass(frozen=True)
class Noise:
    """Rates at which a source record deviates from the truth (each drawn independently)."""

    typo: float = 0.05  # one character of the surname changed
    nickname: float = 0.05  # Bob for Robert, where a nickname exists
    swapped_names: float = 0.02  # first and last name exchanged
    case_change: float = 0.10  # names upper-cased, e-mail mixed case
    missing_email: float = 0.05
    missing_phone: float = 0.10
    old_email: float = 0.05  # an older address at another provider
    duplicate_account: float = 0.02  # a second record for the same person in one system
    moved: float = 0.05  # an older street address (another street, town and postcode)
    phone_format: float = 0.15  # the mobile in national format (07... instead of +44 7...)
    missing_birth_date: float = 0.05
    birth_date_swapped: float = 0.02  # day and month exchanged (where both are <= 12)


def _pick(rng: np.random.Generator, options: list[str], n: int) -> np.ndarray:
    return np.array(options)[rng.integers(0, len(options), size=n)]


def draw_identities(
    people: pd.DataFrame,
    rng: np.random.Generator,
    *,
    household_share: float = 0.2,
    shared_email: float = 0.25,
) -> pd.DataFrame:
    """One true identity per person; ``household_share`` of people join another's household.

    ``shared_email`` of those who join use the household's e-mail address (the host's), so
    one address stands for two people: a key that must not merge them on its own.
    """
    n = len(people)
    gender = people["gender"].to_numpy()
    first = np.where(
        gender == "female", _pick(rng, FIRST_NAMES["female"], n), _pick(rng, FIRST_NAMES["male"], n)
    )
    household = np.arange(n)
    joins = rng.random(n) < household_share
    hosts = np.flatnonzero(~joins)  # joiners move in with someone who did not join another
    household[joins] = hosts[rng.integers(0, hosts.size, size=int(joins.sum()))]
    last = _pick(rng, LAST_NAMES, n)[household]
    city_idx = rng.integers(0, len(CITIES), size=n)[household]
    street = _pick(rng, STREETS, n)[household]
    number = rng.integers(1, 200, size=n)[household]
    landline = np.char.add("+44 20 ", rng.integers(1_000_000, 9_999_999, size=n).astype(str))[
        household
    ]
    # Members of one household must differ in first name: redraw repeats until none is
    # left (a few rounds; households are small).
    for _ in range(20):
        clash = pd.DataFrame({"h": household, "f": first}).duplicated().to_numpy()
        if not clash.any():
            break
        first[clash] = np.where(
            gender[clash] == "female",
            _pick(rng, FIRST_NAMES["female"], int(clash.sum())),
            _pick(rng, FIRST_NAMES["male"], int(clash.sum())),
        )
    email = np.char.add(
        np.char.add(
            np.char.add(np.char.lower(first.astype(str)), "."), np.char.lower(last.astype(str))
        ),
        np.char.add(np.char.add(np.arange(n).astype(str), "@"), _pick(rng, DOMAINS, n)),
    )
    shares = joins & (rng.random(n) < shared_email)
    email = np.where(shares, email[household], email)
    birth = pd.to_datetime("1950-01-01") + pd.to_timedelta(
        rng.integers(0, 20_000, size=n), unit="D"
    )
    return pd.DataFrame(
        {
            "person_id": people["person_id"].to_numpy(),
            "household_id": household,
            "first_name": first,
            "last_name": last,
            "email": email,
            "shares_email": shares,
            "mobile": np.char.add(
                "+44 7", rng.integers(100_000_000, 999_999_999, size=n).astype(str)
            ),
            "landline": landline,
            "address": np.char.add(np.char.add(number.astype(str), " "), street),
            "postcode": np.char.add(
                np.array([c[1] for c in CITIES])[city_idx],
                np.char.add(" ", rng.integers(1, 9, size=n).astype(str)[household]),
            ),
            "city": np.array([c[0] for c in CITIES])[city_idx],
            "birth_date": birth.strftime("%Y-%m-%d"),
        }
    )


def _typo(names: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = names.astype(object)
    for i, name in enumerate(out):
        pos = int(rng.integers(0, len(name)))
        letter = "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(0, 26))]
        if letter == name[pos].lower():
            letter = "x" if letter != "x" else "z"
        out[i] = name[:pos] + letter + name[pos + 1 :]
    return out.astype(str)


def source_records(
    identities: pd.DataFrame,
    rng: np.random.Generator,
    noise: Noise | None = None,
    systems: dict[str, float] | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Each system's records (its own ids) and the truth: system, source_id, person_id, noise.

    ``systems`` gives the chance a person has a record in each system (default
    :data:`SYSTEMS`); a person in none is put in the CRM.
    """
    noise = noise or Noise()
    shares = {**SYSTEMS, **(systems or {})}
    n = len(identities)
    member = {s: rng.random(n) < share for s, share in shares.items()}
    nobody = ~np.logical_or.reduce(list(member.values()))
    member["crm"] |= nobody
    out: dict[str, pd.DataFrame] = {}
    truths = []
    for s_index, system in enumerate(SYSTEMS):
        rows = np.flatnonzero(member[system])
        extra = rows[rng.random(rows.size) < noise.duplicate_account]
        rows = np.sort(np.concatenate([rows, extra]))
        rec = identities.iloc[rows].reset_index(drop=True).copy()
        m = len(rec)
        applied = {f.name: rng.random(m) < getattr(noise, f.name) for f in fields(Noise)}
        applied["duplicate_account"] = np.r_[False, rows[1:] == rows[:-1]]
        has_nick = rec.first_name.isin(list(NICKNAMES)).to_numpy()
        applied["nickname"] &= has_nick
        first, last = rec.first_name.to_numpy().astype(str), rec.last_name.to_numpy().astype(str)
        first = np.where(
            applied["nickname"], rec.first_name.map(NICKNAMES).fillna(rec.first_name), first
        )
        if applied["typo"].any():
            last = last.copy()
            last[applied["typo"]] = _typo(last[applied["typo"]], rng)
        first, last = (
            np.where(applied["swapped_names"], last, first),
            np.where(applied["swapped_names"], first, last),
        )
        first = np.where(applied["case_change"], np.char.upper(first.astype(str)), first)
        last = np.where(applied["case_change"], np.char.upper(last.astype(str)), last)
        email = rec.email.to_numpy().astype(str)
        old = np.char.add(np.char.partition(email, "@")[:, 0], "@aol.com")
        email = np.where(applied["old_email"], old, email)
        email = np.where(applied["case_change"], np.char.title(email), email)
        email = np.where(applied["missing_email"], "", email)
        mobile = rec.mobile.to_numpy().astype(str)
        national = np.char.add("0", np.char.replace(np.char.lstrip(mobile, "+44 "), " ", ""))
        mobile = np.where(applied["phone_format"], national, mobile)
        mobile = np.where(applied["missing_phone"], "", mobile)
        address = rec.address.to_numpy().astype(str)
        postcode = rec.postcode.to_numpy().astype(str)
        city = rec.city.to_numpy().astype(str)
        k = int(applied["moved"].sum())
        if k:  # an address they lived at before: another street, town and postcode
            where = rng.integers(0, len(CITIES), size=k)
            address[applied["moved"]] = np.char.add(
                np.char.add(rng.integers(1, 200, size=k).astype(str), " "), _pick(rng, STREETS, k)
            )
            postcode[applied["moved"]] = np.char.add(
                np.array([c[1] for c in CITIES])[where],
                np.char.add(" ", rng.integers(1, 9, size=k).astype(str)),
            )
            city[applied["moved"]] = np.array([c[0] for c in CITIES])[where]
        birth = rec.birth_date.to_numpy().astype(str)
        year_part = np.char.partition(birth, "-")[:, 0]
        rest = np.char.partition(birth, "-")[:, 2]
        mm = np.char.partition(rest, "-")[:, 0]
        dd = np.char.partition(rest, "-")[:, 2]
        swappable = (dd.astype(int) <= 12) & (dd != mm)
        applied["birth_date_swapped"] &= swappable
        swapped = np.char.add(np.char.add(np.char.add(year_part, "-"), np.char.add(dd, "-")), mm)
        birth = np.where(applied["birth_date_swapped"], swapped, birth)
        birth = np.where(applied["missing_birth_date"], "", birth)
        prefix = {"crm": "C", "webshop": "W", "loyalty": "L"}[system]
        ids = np.char.add(prefix, (np.arange(m) + 1 + 1_000_000 * s_index).astype(str))
        out[system] = pd.DataFrame(
            {
                "source_id": ids,
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": mobile,
                "landline": rec.landline.to_numpy(),
                "address": address,
                "postcode": postcode,
                "city": city,
                "birth_date": birth,
            }
        )
        names = np.array([f.name for f in fields(Noise)])
        flags = np.stack([applied[k] for k in names], axis=1)
        truths.append(
            pd.DataFrame(
                {
                    "system": system,
                    "source_id": ids,
                    "person_id": rec.person_id.to_numpy(),
                    "household_id": rec.household_id.to_numpy(),
                    "noise": [",".join(names[row]) for row in flags],
                }
            )
        )
    return out, pd.concat(truths, ignore_index=True)
