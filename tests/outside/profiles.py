"""Customer profiles from a North-American register, written independently of custintel's
simulator: its own name, street and town vocabularies, its own typo model (keyboard
neighbours, dropped and doubled letters, transposed digits, OCR-like confusions), its own
household structure (families with children, couples who married into one surname,
twins, room-mates), US-style columns (``given_name``, ``surname``, ``dob`` as
MM/DD/YYYY, ``ssn``, ``street``, ``town``, ``state``, ``zip``, ``phone_number`` (a cell, else
the household's landline), ``email_address``) and a truth table of who is who.

:func:`people` draws the population; :func:`records` writes one or two sources from it.
Variants drop whole columns, as real exports do: ``full`` (everything), ``no_email``,
``no_email_no_phone``, ``id_only`` (names, street address, birth date and the national
id), and ``two_sources`` (two systems, each holding each person at most once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def _words(text: str) -> list[str]:
    return text.split()


GIVEN = {
    "F": _words(
        "Mary Patricia Linda Barbara Jessica Sarah Karen Nancy Lisa Betty Sandra Ashley "
        "Kimberly Donna Emily Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Laura "
        "Sharon Cynthia Kathleen Amy Shirley Angela Helen Anna Brenda Pamela Nicole Emma "
        "Samantha Christine Catherine Debra Rachel Carolyn Janet Maria Heather Diane Julie "
        "Joyce Victoria Kelly Christina Lauren Joan Evelyn Olivia Judith Megan Cheryl Martha "
        "Andrea Frances Hannah Jacqueline Ann Gloria Jean Kathryn Alice Teresa Sara Janice "
        "Doris Madison Julia Grace Judy Abigail Marie Denise Beverly Amber Theresa Marilyn "
        "Danielle Diana Brittany Natalie Sophia Rose Isabella Alexis Kayla Charlotte Guadalupe "
        "Rosa Carmen Ingrid Astrid Greta Yolanda Leticia Ximena Camila Valentina Luz Dolores"
    ),
    "M": _words(
        "James Robert John Michael David William Richard Joseph Thomas Christopher Charles "
        "Daniel Matthew Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian "
        "George Timothy Ronald Jason Edward Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan "
        "Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Patrick Frank "
        "Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Zachary Douglas Peter "
        "Kyle Noah Ethan Jeremy Walter Christian Keith Roger Terry Austin Sean Gerald Carl "
        "Harold Dylan Arthur Lawrence Jordan Jesse Bryan Billy Bruce Gabriel Joe Logan Alan "
        "Juan Albert Willie Elijah Wayne Randy Vincent Mason Roy Ralph Bobby Russell Bradley "
        "Philip Eugene Francisco Jesus Alejandro Miguel Fernando Lars Nils Hans Dieter Sven"
    ),
}
SHORT = {
    "Patricia": "Patty", "Jessica": "Jess", "Kimberly": "Kim", "Deborah": "Debbie",
    "Stephanie": "Steph", "Rebecca": "Becca", "Cynthia": "Cindy", "Kathleen": "Kathy",
    "Pamela": "Pam", "Samantha": "Sam", "Christine": "Chris", "Catherine": "Cathy",
    "Jacqueline": "Jackie", "Victoria": "Tori", "Abigail": "Abby", "Natalie": "Nat",
    "Alexis": "Lexi", "Robert": "Rob", "Michael": "Mike", "William": "Will",
    "Richard": "Rich", "Joseph": "Joe", "Thomas": "Tom", "Christopher": "Chris",
    "Charles": "Charlie", "Daniel": "Danny", "Matthew": "Matt", "Anthony": "Tony",
    "Donald": "Don", "Steven": "Steve", "Andrew": "Andy", "Joshua": "Josh",
    "Kenneth": "Ken", "Timothy": "Tim", "Ronald": "Ron", "Edward": "Ed",
    "Jeffrey": "Jeff", "Nicholas": "Nick", "Jonathan": "Jon", "Benjamin": "Ben",
    "Samuel": "Sam", "Gregory": "Greg", "Alexander": "Alex", "Patrick": "Pat",
    "Raymond": "Ray", "Zachary": "Zach", "Lawrence": "Larry", "Bradley": "Brad",
    "Philip": "Phil", "Eugene": "Gene", "Francisco": "Paco", "Guadalupe": "Lupe",
    "Jesus": "Chuy", "Alejandro": "Alex", "Dolores": "Lola",
}  # fmt: skip
SURNAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
    "Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed "
    "Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett "
    "Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster "
    "Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes "
    "Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham "
    "Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran "
    "Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez McDonald "
    "Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns "
    "Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz "
    "Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren "
    "Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan "
    "Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters "
    "Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll Lane "
    "Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards "
    "Lindqvist Johansson Becker Schneider Fischer Weber Kowalski Novak Okafor Mensah Haddad"
)
STREET_NAMES = _words(
    "Maple Oak Pine Cedar Elm Walnut Willow Birch Spruce Chestnut Hickory Magnolia Sycamore "
    "Lincoln Washington Jefferson Madison Monroe Jackson Franklin Adams Hamilton Grant "
    "Highland Lakeview Hillside Ridge Valley Meadow Sunset Park River Spring Forest Prairie "
    "Church Mill Market Center Union Liberty Broad Railroad Canyon Harbor Orchard Summit"
)
STREET_TYPES = {
    "Street": "St", "Avenue": "Ave", "Boulevard": "Blvd", "Road": "Rd", "Drive": "Dr",
    "Lane": "Ln", "Court": "Ct", "Place": "Pl", "Way": "Way", "Terrace": "Ter",
    "Parkway": "Pkwy", "Circle": "Cir",
}  # fmt: skip
STATES = _words("AL AZ CA CO FL GA IL IN MA MI MN MO NC NJ NY OH OR PA TN TX VA WA WI")
TOWN_WORDS = _words(
    "Spring Green Fair Clear Oak Maple Pine River Lake Rock Glen Wood Brook Ash Elm Red "
    "Silver Stone Mill Bridge Port Hazel Marble Cedar"
)
TOWN_ENDS = _words("field ville ton burg wood dale port view haven ford mont side")
DOMAINS = _words("gmail.com yahoo.com outlook.com hotmail.com aol.com icloud.com comcast.net")
KEYBOARD = {
    "a": "qsz", "b": "vgn", "c": "xdv", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht",
    "h": "gjy", "i": "uok", "j": "hku", "k": "jli", "l": "ko", "m": "nj", "n": "bmh",
    "o": "ipl", "p": "o", "q": "wa", "r": "etf", "s": "adw", "t": "ryg", "u": "yij",
    "v": "cfb", "w": "qes", "x": "zsc", "y": "tuh", "z": "xa",
}  # fmt: skip
VARIANTS = ("full", "no_email", "no_email_no_phone", "id_only", "two_sources")


@dataclass(frozen=True)
class Noise:
    """Per-record error rates of a source system."""

    short_name: float = 0.08
    name_typo: float = 0.04
    surname_typo: float = 0.04
    married_name: float = 0.01
    dob_missing: float = 0.03
    dob_swapped: float = 0.015
    dob_typo: float = 0.01
    dob_invalid: float = 0.007
    street_style: float = 0.25
    street_typo: float = 0.04
    moved: float = 0.06
    zip_missing: float = 0.02
    ssn_missing: float = 0.15
    ssn_typo: float = 0.01
    phone_missing: float = 0.15
    email_missing: float = 0.10
    email_changed: float = 0.05


def _towns(rng: np.random.Generator, n: int) -> pd.DataFrame:
    names = {f"{rng.choice(TOWN_WORDS)}{rng.choice(TOWN_ENDS)}".capitalize() for _ in range(n * 3)}
    towns = sorted(names)[:n]
    state = rng.choice(STATES, len(towns))
    zip_base = rng.choice(np.arange(10000, 99000, 17), len(towns), replace=False)
    return pd.DataFrame({"town": towns, "state": state, "zip_base": zip_base})


def _street(rng: np.random.Generator) -> tuple[str, str]:
    """A house number and street, and the town-independent street text."""
    kind = rng.choice(list(STREET_TYPES))
    text = f"{rng.integers(1, 9999)} {rng.choice(STREET_NAMES)} {kind}"
    if rng.random() < 0.15:
        text += f" Apt {rng.integers(1, 40)}{rng.choice(list('ABCD'))}"
    return text, kind


def people(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` people in households: couples, families with children, twins, room-mates
    (who share the address and landline but not the surname) and people living alone."""
    rng = np.random.default_rng(seed)
    towns = _towns(rng, max(60, n // 60))
    surname_p = 1 / np.arange(1, len(SURNAMES) + 1) ** 0.7
    surname_p /= surname_p.sum()
    rows: list[dict[str, object]] = []
    household = 0
    used_ssn: set[int] = set()
    used_email: set[str] = set()
    while len(rows) < n:
        household += 1
        kind = rng.choice(["alone", "couple", "family", "roommates"], p=[0.5, 0.22, 0.2, 0.08])
        size = {"alone": 1, "couple": 2, "family": int(rng.integers(3, 6)), "roommates": 2}[kind]
        town = towns.iloc[int(rng.integers(len(towns)))]
        street, _ = _street(rng)
        zip_code = f"{int(town.zip_base) + int(rng.integers(0, 17)):05d}"
        landline = _phone_number(rng) if rng.random() < 0.6 else None
        family_name = rng.choice(SURNAMES, p=surname_p)
        parents_year = int(rng.integers(1945, 1990))
        twins = kind == "family" and rng.random() < 0.08
        taken: set[str] = set()
        for member in range(size):
            sex = rng.choice(["F", "M"])
            given = rng.choice(GIVEN[sex])
            while given in taken:
                given = rng.choice(GIVEN[sex])
            taken.add(given)
            if kind == "roommates" or (kind == "couple" and member == 1 and rng.random() < 0.3):
                surname = rng.choice(SURNAMES, p=surname_p)
            else:
                surname = family_name
            if kind == "family" and member >= 2:
                year = parents_year + int(rng.integers(22, 38))
            elif kind == "roommates":
                year = int(rng.integers(1975, 2004))
            else:
                year = parents_year + int(rng.integers(-3, 4))
            year = min(year, 2006)
            dob = pd.Timestamp(year, 1, 1) + pd.Timedelta(days=int(rng.integers(0, 365)))
            if twins and member == 3:
                dob = rows[-1]["dob"]  # a twin of the previous child
            ssn = int(rng.integers(100_000_000, 899_999_999))
            while ssn in used_ssn:
                ssn = int(rng.integers(100_000_000, 899_999_999))
            used_ssn.add(ssn)
            rows.append(
                {
                    "person_id": len(rows),
                    "household_id": household,
                    "sex": sex,
                    "given_name": given,
                    "surname": surname,
                    "dob": dob,
                    "ssn": f"{ssn:09d}",
                    "street": street,
                    "town": town.town,
                    "state": town.state,
                    "zip": zip_code,
                    "home_phone": landline,
                    "cell": _phone_number(rng) if rng.random() < 0.85 else None,
                    "email_address": _email(rng, given, surname, year, used_email)
                    if rng.random() < 0.9
                    else None,
                }
            )
    return pd.DataFrame(rows[:n])


def _phone_number(rng: np.random.Generator) -> str:
    area = int(rng.choice([212, 305, 312, 415, 503, 512, 617, 704, 713, 808, 919, 971]))
    return f"{area}{int(rng.integers(200, 999)):03d}{int(rng.integers(0, 10000)):04d}"


def _email(rng: np.random.Generator, given: str, surname: str, year: int, taken: set[str]) -> str:
    """A mailbox nobody else holds (a provider gives each address out once)."""
    while True:
        style = rng.integers(0, 4)
        local = [
            f"{given}.{surname}",
            f"{given[0]}{surname}{year % 100:02d}",
            f"{surname}{given[:3]}",
            f"{given}{int(rng.integers(1, 999))}",
        ][style].lower()
        address = f"{local}@{rng.choice(DOMAINS)}"
        if address not in taken:
            taken.add(address)
            return address


# -- noise -----------------------------------------------------------------------------
def typo(rng: np.random.Generator, text: str) -> str:
    """One keyboard slip: a neighbour key, a dropped, doubled or transposed letter."""
    if len(text) < 3:
        return text
    i = int(rng.integers(1, len(text) - 1))
    kind = rng.integers(0, 4)
    if kind == 0 and text[i].lower() in KEYBOARD:
        return text[:i] + rng.choice(list(KEYBOARD[text[i].lower()])) + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]


def _digit_slip(rng: np.random.Generator, digits: str) -> str:
    i = int(rng.integers(0, len(digits) - 1))
    return digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]


def _restyle_street(rng: np.random.Generator, street: str) -> str:
    words = street.split(" ")
    out = [STREET_TYPES.get(w, w) if rng.random() < 0.7 else w for w in words]
    text = " ".join(out)
    if rng.random() < 0.3:
        text = text.upper()
    if rng.random() < 0.2:
        text = text.replace(" Apt ", " #").replace(" APT ", " #")
    if rng.random() < 0.2:
        text += "."
    return text


def _phone_text(rng: np.random.Generator, number: object) -> str | None:
    if not isinstance(number, str):
        return None
    a, b, c = number[:3], number[3:6], number[6:]
    return str(rng.choice([f"({a}) {b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", number]))


def _dob_text(rng: np.random.Generator, dob: pd.Timestamp, noise: Noise) -> str | None:
    roll = rng.random()
    if roll < noise.dob_missing:
        return None
    roll -= noise.dob_missing
    if roll < noise.dob_invalid:
        return str(rng.choice(["00/00/0000", "02/30/1980", "13/45/1971", "01/01/2093"]))
    roll -= noise.dob_invalid
    month, day, year = dob.month, dob.day, dob.year
    if roll < noise.dob_swapped and day <= 12:
        month, day = day, month
    elif roll < noise.dob_swapped + noise.dob_typo:
        year += int(rng.choice([-10, -1, 1, 10]))
    return f"{month:02d}/{day:02d}/{year}"


def _record(
    rng: np.random.Generator,
    p: pd.Series,
    noise: Noise,
    towns: list[tuple[str, str, str]],
    taken: set[str],
) -> dict[str, object]:
    given = p.given_name
    if rng.random() < noise.short_name and given in SHORT:
        given = SHORT[given]
    elif rng.random() < noise.name_typo:
        given = typo(rng, given)
    surname = p.surname
    if p.sex == "F" and rng.random() < noise.married_name:
        surname = rng.choice(SURNAMES)
    elif rng.random() < noise.surname_typo:
        surname = typo(rng, surname)
    street, town, state, zip_code = p.street, p.town, p.state, p.zip
    home = p.home_phone
    if rng.random() < noise.moved:
        street, _ = _street(rng)
        town, state, zip_code = towns[int(rng.integers(len(towns)))]
        home = None
    if rng.random() < noise.street_style:
        street = _restyle_street(rng, street)
    if rng.random() < noise.street_typo:
        street = typo(rng, street)
    if rng.random() < noise.zip_missing:
        zip_code = None
    ssn = p.ssn
    if rng.random() < noise.ssn_missing:
        ssn = None
    elif rng.random() < noise.ssn_typo:
        ssn = _digit_slip(rng, ssn)
    if ssn is not None and rng.random() < 0.5:
        ssn = f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}"
    email = p.email_address
    if email is not None and rng.random() < noise.email_changed:
        email = _email(rng, p.given_name, p.surname, p.dob.year, taken)
    if rng.random() < noise.email_missing:
        email = None
    # One phone per profile, as most systems keep: the person's cell, else the
    # household's landline (which is how household members come to share a number).
    phone = p.cell if isinstance(p.cell, str) and rng.random() >= noise.phone_missing else home
    case = rng.random()
    if case < 0.1:
        given, surname = given.upper(), surname.upper()
    return {
        "given_name": given,
        "surname": surname,
        "dob": _dob_text(rng, p.dob, noise),
        "ssn": ssn,
        "street": street,
        "town": town,
        "state": state,
        "zip": zip_code,
        "phone_number": _phone_text(rng, phone),
        "email_address": email,
    }


COLUMNS = {
    "full": ["given_name", "surname", "dob", "ssn", "street", "town", "state", "zip",
             "phone_number", "email_address"],
    "no_email": ["given_name", "surname", "dob", "ssn", "street", "town", "state", "zip",
                 "phone_number"],
    "no_email_no_phone": ["given_name", "surname", "dob", "ssn", "street", "town", "state",
                          "zip"],
    "id_only": ["given_name", "surname", "dob", "ssn", "street"],
}  # fmt: skip


def records(
    population: pd.DataFrame, variant: str, seed: int = 0, noise: Noise | None = None
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Source files (name -> frame with a ``cust_no`` id column) and the truth
    (``source``, ``cust_no``, ``person_id``, ``household_id``).

    One-source variants hold 1 to 4 records per person (most people once); in
    ``two_sources`` a ``crm`` and a ``billing`` system each hold a person at most once,
    with 70 % of people in both."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    rng = np.random.default_rng(seed + 1)
    noise = noise or Noise()
    towns = list(population[["town", "state", "zip"]].drop_duplicates().itertuples(index=False))
    towns = [tuple(t) for t in towns]
    taken = set(population.email_address.dropna())
    if variant == "two_sources":
        in_crm = rng.random(len(population)) < 0.85
        in_billing = ~in_crm | (rng.random(len(population)) < 0.82)
        plan = {"crm": population[in_crm], "billing": population[in_billing]}
        columns = COLUMNS["no_email"]
    else:
        copies = rng.choice([1, 2, 3, 4], len(population), p=[0.55, 0.3, 0.12, 0.03])
        plan = {"register": population.loc[population.index.repeat(copies)]}
        columns = COLUMNS[variant]
    files: dict[str, pd.DataFrame] = {}
    truth = []
    for source, rows in plan.items():
        made = pd.DataFrame([_record(rng, p, noise, towns, taken) for p in rows.itertuples()])
        order = rng.permutation(len(made))
        made = made.iloc[order].reset_index(drop=True)
        ids = pd.Series([f"{source[:1].upper()}{i + 100000}" for i in range(len(made))])
        files[source] = pd.concat([ids.rename("cust_no"), made[columns]], axis=1)
        truth.append(
            pd.DataFrame(
                {
                    "source": source,
                    "cust_no": ids,
                    "person_id": rows.person_id.to_numpy()[order],
                    "household_id": rows.household_id.to_numpy()[order],
                }
            )
        )
    return files, pd.concat(truth, ignore_index=True)


SOURCE_COLUMNS = {
    "source_id": "cust_no",
    "first_name": "given_name",
    "last_name": "surname",
    "birth_date": "dob",
    "national_id": "ssn",
    "address": "street",
    "city": "town",
    "region": "state",
    "postcode": "zip",
    "phone": "phone_number",
    "email": "email_address",
}
"""How a custintel project maps these files onto the ``customers`` contract."""


def mapping(columns: list[str]) -> dict[str, str]:
    """The contract -> file column mapping for a file holding ``columns``."""
    return {k: v for k, v in SOURCE_COLUMNS.items() if v in columns}
