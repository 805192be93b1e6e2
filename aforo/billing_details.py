"""Billing details in the shared kernel: the seller's (a Tenant's) and the buyer's (a Customer's)
name, address, country and tax id as an invoice shows them, and the validators every interface
runs (the model fields carry them, so full_clean — services, the admin, the API — names the field).

Contracts:
- A country is an ISO 3166-1 alpha-2 code in upper case ("DE", "US"); `country_normalise` strips
  and upper-cases what people type before it is checked. The table is ISO 3166-1's officially
  assigned codes (249, as of 2026); user-assigned codes (XK, "EU") are refused.
- A tax id (VAT number, EIN, GSTIN, ABN, ...) is printed as entered: 2 to 32 characters of
  letters, digits, spaces and . - / with at least one digit. No per-country checksum: the
  formats are too many to check honestly, and a wrong check would refuse a real number.
- An address is up to ADDRESS_MAX_LINES lines of up to ADDRESS_MAX_LINE characters, without
  control characters (blank lines are dropped when it is shown).
Every field is optional: an invoice shows what is filled in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from django.core.exceptions import ValidationError
from django.db import models

ISO_3166_COUNTRIES: Mapping[str, str] = MappingProxyType(
    {
        "AD": 'Andorra',
        "AE": 'United Arab Emirates',
        "AF": 'Afghanistan',
        "AG": 'Antigua and Barbuda',
        "AI": 'Anguilla',
        "AL": 'Albania',
        "AM": 'Armenia',
        "AO": 'Angola',
        "AQ": 'Antarctica',
        "AR": 'Argentina',
        "AS": 'American Samoa',
        "AT": 'Austria',
        "AU": 'Australia',
        "AW": 'Aruba',
        "AX": 'Åland Islands',
        "AZ": 'Azerbaijan',
        "BA": 'Bosnia and Herzegovina',
        "BB": 'Barbados',
        "BD": 'Bangladesh',
        "BE": 'Belgium',
        "BF": 'Burkina Faso',
        "BG": 'Bulgaria',
        "BH": 'Bahrain',
        "BI": 'Burundi',
        "BJ": 'Benin',
        "BL": 'Saint Barthélemy',
        "BM": 'Bermuda',
        "BN": 'Brunei Darussalam',
        "BO": 'Bolivia',
        "BQ": 'Bonaire, Sint Eustatius and Saba',
        "BR": 'Brazil',
        "BS": 'Bahamas',
        "BT": 'Bhutan',
        "BV": 'Bouvet Island',
        "BW": 'Botswana',
        "BY": 'Belarus',
        "BZ": 'Belize',
        "CA": 'Canada',
        "CC": 'Cocos (Keeling) Islands',
        "CD": 'Congo, Democratic Republic of the',
        "CF": 'Central African Republic',
        "CG": 'Congo',
        "CH": 'Switzerland',
        "CI": "Côte d'Ivoire",
        "CK": 'Cook Islands',
        "CL": 'Chile',
        "CM": 'Cameroon',
        "CN": 'China',
        "CO": 'Colombia',
        "CR": 'Costa Rica',
        "CU": 'Cuba',
        "CV": 'Cabo Verde',
        "CW": 'Curaçao',
        "CX": 'Christmas Island',
        "CY": 'Cyprus',
        "CZ": 'Czechia',
        "DE": 'Germany',
        "DJ": 'Djibouti',
        "DK": 'Denmark',
        "DM": 'Dominica',
        "DO": 'Dominican Republic',
        "DZ": 'Algeria',
        "EC": 'Ecuador',
        "EE": 'Estonia',
        "EG": 'Egypt',
        "EH": 'Western Sahara',
        "ER": 'Eritrea',
        "ES": 'Spain',
        "ET": 'Ethiopia',
        "FI": 'Finland',
        "FJ": 'Fiji',
        "FK": 'Falkland Islands (Malvinas)',
        "FM": 'Micronesia',
        "FO": 'Faroe Islands',
        "FR": 'France',
        "GA": 'Gabon',
        "GB": 'United Kingdom',
        "GD": 'Grenada',
        "GE": 'Georgia',
        "GF": 'French Guiana',
        "GG": 'Guernsey',
        "GH": 'Ghana',
        "GI": 'Gibraltar',
        "GL": 'Greenland',
        "GM": 'Gambia',
        "GN": 'Guinea',
        "GP": 'Guadeloupe',
        "GQ": 'Equatorial Guinea',
        "GR": 'Greece',
        "GS": 'South Georgia and the South Sandwich Islands',
        "GT": 'Guatemala',
        "GU": 'Guam',
        "GW": 'Guinea-Bissau',
        "GY": 'Guyana',
        "HK": 'Hong Kong',
        "HM": 'Heard Island and McDonald Islands',
        "HN": 'Honduras',
        "HR": 'Croatia',
        "HT": 'Haiti',
        "HU": 'Hungary',
        "ID": 'Indonesia',
        "IE": 'Ireland',
        "IL": 'Israel',
        "IM": 'Isle of Man',
        "IN": 'India',
        "IO": 'British Indian Ocean Territory',
        "IQ": 'Iraq',
        "IR": 'Iran',
        "IS": 'Iceland',
        "IT": 'Italy',
        "JE": 'Jersey',
        "JM": 'Jamaica',
        "JO": 'Jordan',
        "JP": 'Japan',
        "KE": 'Kenya',
        "KG": 'Kyrgyzstan',
        "KH": 'Cambodia',
        "KI": 'Kiribati',
        "KM": 'Comoros',
        "KN": 'Saint Kitts and Nevis',
        "KP": "Korea, Democratic People's Republic of",
        "KR": 'Korea, Republic of',
        "KW": 'Kuwait',
        "KY": 'Cayman Islands',
        "KZ": 'Kazakhstan',
        "LA": "Lao People's Democratic Republic",
        "LB": 'Lebanon',
        "LC": 'Saint Lucia',
        "LI": 'Liechtenstein',
        "LK": 'Sri Lanka',
        "LR": 'Liberia',
        "LS": 'Lesotho',
        "LT": 'Lithuania',
        "LU": 'Luxembourg',
        "LV": 'Latvia',
        "LY": 'Libya',
        "MA": 'Morocco',
        "MC": 'Monaco',
        "MD": 'Moldova',
        "ME": 'Montenegro',
        "MF": 'Saint Martin (French part)',
        "MG": 'Madagascar',
        "MH": 'Marshall Islands',
        "MK": 'North Macedonia',
        "ML": 'Mali',
        "MM": 'Myanmar',
        "MN": 'Mongolia',
        "MO": 'Macao',
        "MP": 'Northern Mariana Islands',
        "MQ": 'Martinique',
        "MR": 'Mauritania',
        "MS": 'Montserrat',
        "MT": 'Malta',
        "MU": 'Mauritius',
        "MV": 'Maldives',
        "MW": 'Malawi',
        "MX": 'Mexico',
        "MY": 'Malaysia',
        "MZ": 'Mozambique',
        "NA": 'Namibia',
        "NC": 'New Caledonia',
        "NE": 'Niger',
        "NF": 'Norfolk Island',
        "NG": 'Nigeria',
        "NI": 'Nicaragua',
        "NL": 'Netherlands',
        "NO": 'Norway',
        "NP": 'Nepal',
        "NR": 'Nauru',
        "NU": 'Niue',
        "NZ": 'New Zealand',
        "OM": 'Oman',
        "PA": 'Panama',
        "PE": 'Peru',
        "PF": 'French Polynesia',
        "PG": 'Papua New Guinea',
        "PH": 'Philippines',
        "PK": 'Pakistan',
        "PL": 'Poland',
        "PM": 'Saint Pierre and Miquelon',
        "PN": 'Pitcairn',
        "PR": 'Puerto Rico',
        "PS": 'Palestine, State of',
        "PT": 'Portugal',
        "PW": 'Palau',
        "PY": 'Paraguay',
        "QA": 'Qatar',
        "RE": 'Réunion',
        "RO": 'Romania',
        "RS": 'Serbia',
        "RU": 'Russian Federation',
        "RW": 'Rwanda',
        "SA": 'Saudi Arabia',
        "SB": 'Solomon Islands',
        "SC": 'Seychelles',
        "SD": 'Sudan',
        "SE": 'Sweden',
        "SG": 'Singapore',
        "SH": 'Saint Helena, Ascension and Tristan da Cunha',
        "SI": 'Slovenia',
        "SJ": 'Svalbard and Jan Mayen',
        "SK": 'Slovakia',
        "SL": 'Sierra Leone',
        "SM": 'San Marino',
        "SN": 'Senegal',
        "SO": 'Somalia',
        "SR": 'Suriname',
        "SS": 'South Sudan',
        "ST": 'Sao Tome and Principe',
        "SV": 'El Salvador',
        "SX": 'Sint Maarten (Dutch part)',
        "SY": 'Syrian Arab Republic',
        "SZ": 'Eswatini',
        "TC": 'Turks and Caicos Islands',
        "TD": 'Chad',
        "TF": 'French Southern Territories',
        "TG": 'Togo',
        "TH": 'Thailand',
        "TJ": 'Tajikistan',
        "TK": 'Tokelau',
        "TL": 'Timor-Leste',
        "TM": 'Turkmenistan',
        "TN": 'Tunisia',
        "TO": 'Tonga',
        "TR": 'Türkiye',
        "TT": 'Trinidad and Tobago',
        "TV": 'Tuvalu',
        "TW": 'Taiwan',
        "TZ": 'Tanzania, United Republic of',
        "UA": 'Ukraine',
        "UG": 'Uganda',
        "UM": 'United States Minor Outlying Islands',
        "US": 'United States of America',
        "UY": 'Uruguay',
        "UZ": 'Uzbekistan',
        "VA": 'Holy See',
        "VC": 'Saint Vincent and the Grenadines',
        "VE": 'Venezuela',
        "VG": 'Virgin Islands (British)',
        "VI": 'Virgin Islands (U.S.)',
        "VN": 'Viet Nam',
        "VU": 'Vanuatu',
        "WF": 'Wallis and Futuna',
        "WS": 'Samoa',
        "YE": 'Yemen',
        "YT": 'Mayotte',
        "ZA": 'South Africa',
        "ZM": 'Zambia',
        "ZW": 'Zimbabwe',
    }
)

ADDRESS_MAX_LINES = 6
ADDRESS_MAX_LINE = 100
TAX_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .\-/]{0,30}[A-Za-z0-9]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def country_normalise(value: object) -> object:
    """' de ' -> 'DE'; anything not a string is returned as it is (the validator refuses it)."""
    return value.strip().upper() if isinstance(value, str) else value


def country_name(code: str) -> str:
    """The country's short English name ("DE" -> "Germany"); the code itself if unknown."""
    return ISO_3166_COUNTRIES.get(code, code)


def validate_country(value: object) -> None:
    if value in ("", None):
        return
    if not isinstance(value, str) or value not in ISO_3166_COUNTRIES:
        shown = repr(value[:20] if isinstance(value, str) else value)
        raise ValidationError(
            f"{shown} is not an ISO 3166-1 alpha-2 country code: two letters such as DE, FR or US.",
            code="invalid_country",
        )


def validate_tax_id(value: object) -> None:
    if value in ("", None):
        return
    if not isinstance(value, str) or not TAX_ID_PATTERN.fullmatch(value) or not any(c.isdigit() for c in value):
        raise ValidationError(
            "A tax id is 2 to 32 letters, digits, spaces, dots, dashes or slashes, with at least one digit "
            "(e.g. DE123456789, GB 123 4567 89, 12-3456789).",
            code="invalid_tax_id",
        )


def validate_address(value: object) -> None:
    if value in ("", None):
        return
    if not isinstance(value, str):
        raise ValidationError("An address is text, one line per line of the address.", code="invalid_address")
    lines = address_lines(value)
    if len(lines) > ADDRESS_MAX_LINES:
        raise ValidationError(
            f"An address has at most {ADDRESS_MAX_LINES} lines (got {len(lines)}).", code="invalid_address"
        )
    for number, line in enumerate(lines, start=1):
        if len(line) > ADDRESS_MAX_LINE:
            raise ValidationError(
                f"Line {number} of the address is longer than {ADDRESS_MAX_LINE} characters.", code="invalid_address"
            )
        if _CONTROL.search(line):
            raise ValidationError(f"Line {number} of the address has a control character.", code="invalid_address")


def address_lines(value: str) -> list[str]:
    """The non-blank lines of an address, stripped, in order (\\r\\n, \\r and \\n all end a line)."""
    return [line.strip() for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]


class CountryField(models.CharField):
    """An optional ISO 3166-1 alpha-2 code, normalised (strip, upper case) before it is validated,
    so " de " typed in the admin is stored as "DE"."""

    default_validators = [validate_country]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 2)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        for key, value in (("max_length", 2), ("blank", True), ("default", "")):
            if kwargs.get(key) == value:
                kwargs.pop(key)
        return name, path, args, kwargs

    def to_python(self, value):
        return country_normalise(super().to_python(value))
