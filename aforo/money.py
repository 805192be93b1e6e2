"""Money in the shared kernel: the one ISO 4217 currency table and minor-unit arithmetic.

Pure Python (stdlib only, no Django), so any layer may import it, the rating engine included.

Contracts:
- A currency is valid when it is an upper-case alphabetic code of ISO 4217 list one that has a
  numeric minor unit. Codes whose minor unit is "N.A." are not money and are refused: XTS (for
  testing) and XXX (no currency), precious metals (XAU, XAG, XPD, XPT), bond-market and
  accounting units (XBA–XBD, XDR, XSU, XUA). Withdrawn codes (HRK, SLL, ANG, BGN, …) are refused.
- Callers normalise input (strip, upper-case) before asking; the table itself is exact.
- Rows written before the table existed may carry a currency it does not know: only readers of
  such legacy data pass `default=` (settlement rounds them to LEGACY_MINOR_UNITS places); new
  data is validated on the way in, so nothing else needs a default.
- Nothing here rounds silently: `quantize_to_minor_unit` takes the rounding mode by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, localcontext
from types import MappingProxyType

# ISO 4217 Table A.1 ("list one": current currency & funds codes), maintained by SIX for ISO, as
# in force on 2026-02-01: every alphabetic code with a numeric minor unit (the exponent: digits
# after the decimal separator). Funds codes with a minor unit (BOV, CHE, CHW, CLF, COU, MXV, USN,
# UYI, UYW) are included; "N.A." codes are not (see the module docstring). Recent changes kept
# in: XCG replaced ANG (2025), ZWG replaced ZWL (2024), SLE replaced SLL, EUR replaced BGN (2026).
ISO_4217_MINOR_UNITS: Mapping[str, int] = MappingProxyType(
    {
        "AED": 2,  # UAE Dirham
        "AFN": 2,  # Afghani
        "ALL": 2,  # Lek
        "AMD": 2,  # Armenian Dram
        "AOA": 2,  # Kwanza
        "ARS": 2,  # Argentine Peso
        "AUD": 2,  # Australian Dollar
        "AWG": 2,  # Aruban Florin
        "AZN": 2,  # Azerbaijan Manat
        "BAM": 2,  # Convertible Mark
        "BBD": 2,  # Barbados Dollar
        "BDT": 2,  # Taka
        "BHD": 3,  # Bahraini Dinar
        "BIF": 0,  # Burundi Franc
        "BMD": 2,  # Bermudian Dollar
        "BND": 2,  # Brunei Dollar
        "BOB": 2,  # Boliviano
        "BOV": 2,  # Mvdol
        "BRL": 2,  # Brazilian Real
        "BSD": 2,  # Bahamian Dollar
        "BTN": 2,  # Ngultrum
        "BWP": 2,  # Pula
        "BYN": 2,  # Belarusian Ruble
        "BZD": 2,  # Belize Dollar
        "CAD": 2,  # Canadian Dollar
        "CDF": 2,  # Congolese Franc
        "CHE": 2,  # WIR Euro
        "CHF": 2,  # Swiss Franc
        "CHW": 2,  # WIR Franc
        "CLF": 4,  # Unidad de Fomento
        "CLP": 0,  # Chilean Peso
        "CNY": 2,  # Yuan Renminbi
        "COP": 2,  # Colombian Peso
        "COU": 2,  # Unidad de Valor Real
        "CRC": 2,  # Costa Rican Colon
        "CUP": 2,  # Cuban Peso
        "CVE": 2,  # Cabo Verde Escudo
        "CZK": 2,  # Czech Koruna
        "DJF": 0,  # Djibouti Franc
        "DKK": 2,  # Danish Krone
        "DOP": 2,  # Dominican Peso
        "DZD": 2,  # Algerian Dinar
        "EGP": 2,  # Egyptian Pound
        "ERN": 2,  # Nakfa
        "ETB": 2,  # Ethiopian Birr
        "EUR": 2,  # Euro
        "FJD": 2,  # Fiji Dollar
        "FKP": 2,  # Falkland Islands Pound
        "GBP": 2,  # Pound Sterling
        "GEL": 2,  # Lari
        "GHS": 2,  # Ghana Cedi
        "GIP": 2,  # Gibraltar Pound
        "GMD": 2,  # Dalasi
        "GNF": 0,  # Guinean Franc
        "GTQ": 2,  # Quetzal
        "GYD": 2,  # Guyana Dollar
        "HKD": 2,  # Hong Kong Dollar
        "HNL": 2,  # Lempira
        "HTG": 2,  # Gourde
        "HUF": 2,  # Forint
        "IDR": 2,  # Rupiah
        "ILS": 2,  # New Israeli Sheqel
        "INR": 2,  # Indian Rupee
        "IQD": 3,  # Iraqi Dinar
        "IRR": 2,  # Iranian Rial
        "ISK": 0,  # Iceland Krona
        "JMD": 2,  # Jamaican Dollar
        "JOD": 3,  # Jordanian Dinar
        "JPY": 0,  # Yen
        "KES": 2,  # Kenyan Shilling
        "KGS": 2,  # Som
        "KHR": 2,  # Riel
        "KMF": 0,  # Comorian Franc
        "KPW": 2,  # North Korean Won
        "KRW": 0,  # Won
        "KWD": 3,  # Kuwaiti Dinar
        "KYD": 2,  # Cayman Islands Dollar
        "KZT": 2,  # Tenge
        "LAK": 2,  # Lao Kip
        "LBP": 2,  # Lebanese Pound
        "LKR": 2,  # Sri Lanka Rupee
        "LRD": 2,  # Liberian Dollar
        "LSL": 2,  # Loti
        "LYD": 3,  # Libyan Dinar
        "MAD": 2,  # Moroccan Dirham
        "MDL": 2,  # Moldovan Leu
        "MGA": 2,  # Malagasy Ariary
        "MKD": 2,  # Denar
        "MMK": 2,  # Kyat
        "MNT": 2,  # Tugrik
        "MOP": 2,  # Pataca
        "MRU": 2,  # Ouguiya
        "MUR": 2,  # Mauritius Rupee
        "MVR": 2,  # Rufiyaa
        "MWK": 2,  # Malawi Kwacha
        "MXN": 2,  # Mexican Peso
        "MXV": 2,  # Mexican Unidad de Inversion (UDI)
        "MYR": 2,  # Malaysian Ringgit
        "MZN": 2,  # Mozambique Metical
        "NAD": 2,  # Namibia Dollar
        "NGN": 2,  # Naira
        "NIO": 2,  # Cordoba Oro
        "NOK": 2,  # Norwegian Krone
        "NPR": 2,  # Nepalese Rupee
        "NZD": 2,  # New Zealand Dollar
        "OMR": 3,  # Rial Omani
        "PAB": 2,  # Balboa
        "PEN": 2,  # Sol
        "PGK": 2,  # Kina
        "PHP": 2,  # Philippine Peso
        "PKR": 2,  # Pakistan Rupee
        "PLN": 2,  # Zloty
        "PYG": 0,  # Guarani
        "QAR": 2,  # Qatari Rial
        "RON": 2,  # Romanian Leu
        "RSD": 2,  # Serbian Dinar
        "RUB": 2,  # Russian Ruble
        "RWF": 0,  # Rwanda Franc
        "SAR": 2,  # Saudi Riyal
        "SBD": 2,  # Solomon Islands Dollar
        "SCR": 2,  # Seychelles Rupee
        "SDG": 2,  # Sudanese Pound
        "SEK": 2,  # Swedish Krona
        "SGD": 2,  # Singapore Dollar
        "SHP": 2,  # Saint Helena Pound
        "SLE": 2,  # Leone
        "SOS": 2,  # Somali Shilling
        "SRD": 2,  # Surinam Dollar
        "SSP": 2,  # South Sudanese Pound
        "STN": 2,  # Dobra
        "SVC": 2,  # El Salvador Colon
        "SYP": 2,  # Syrian Pound
        "SZL": 2,  # Lilangeni
        "THB": 2,  # Baht
        "TJS": 2,  # Somoni
        "TMT": 2,  # Turkmenistan New Manat
        "TND": 3,  # Tunisian Dinar
        "TOP": 2,  # Pa’anga
        "TRY": 2,  # Turkish Lira
        "TTD": 2,  # Trinidad and Tobago Dollar
        "TWD": 2,  # New Taiwan Dollar
        "TZS": 2,  # Tanzanian Shilling
        "UAH": 2,  # Hryvnia
        "UGX": 0,  # Uganda Shilling
        "USD": 2,  # US Dollar
        "USN": 2,  # US Dollar (Next day)
        "UYI": 0,  # Uruguay Peso en Unidades Indexadas (UI)
        "UYU": 2,  # Peso Uruguayo
        "UYW": 4,  # Unidad Previsional
        "UZS": 2,  # Uzbekistan Sum
        "VED": 2,  # Bolívar Soberano
        "VES": 2,  # Bolívar Soberano
        "VND": 0,  # Dong
        "VUV": 0,  # Vatu
        "WST": 2,  # Tala
        "XAD": 2,  # Arab Accounting Dinar
        "XAF": 0,  # CFA Franc BEAC
        "XCD": 2,  # East Caribbean Dollar
        "XCG": 2,  # Caribbean Guilder
        "XOF": 0,  # CFA Franc BCEAO
        "XPF": 0,  # CFP Franc
        "YER": 2,  # Yemeni Rial
        "ZAR": 2,  # Rand
        "ZMW": 2,  # Zambian Kwacha
        "ZWG": 2,  # Zimbabwe Gold
    }
)
# What a currency the table does not know is rounded to, for legacy rows only (see above).
LEGACY_MINOR_UNITS = 2


class UnknownCurrency(ValueError):
    """A code that is not an active ISO 4217 currency (and no legacy default was given)."""

    def __init__(self, code: object):
        super().__init__(f"{code!r} is not an active ISO 4217 currency code")
        self.code = code


def currency_is_valid(code: object) -> bool:
    """True for an active ISO 4217 currency with a minor unit ("USD", "JPY", "CLF"); False for
    anything else: unknown or withdrawn codes, "XXX"/"XTS", lower case, non-strings."""
    return isinstance(code, str) and code in ISO_4217_MINOR_UNITS


def currency_minor_units(code: str, *, default: int | None = None) -> int:
    """The currency's exponent: USD 2, JPY 0, KWD 3, CLF 4. An unknown code raises
    UnknownCurrency unless `default` is given (legacy rows only)."""
    places = ISO_4217_MINOR_UNITS.get(code) if isinstance(code, str) else None
    if places is not None:
        return places
    if default is None:
        raise UnknownCurrency(code)
    return default


def minor_unit(code: str, *, default: int | None = None) -> Decimal:
    """The smallest amount of the currency as a Decimal: USD 0.01, JPY 1, KWD 0.001."""
    return Decimal(1).scaleb(-currency_minor_units(code, default=default))


def quantize_to_minor_unit(amount: Decimal, code: str, *, rounding: str, default: int | None = None) -> Decimal:
    """`amount` rounded to the currency's minor unit with the named `rounding` mode (a
    `decimal.ROUND_*` constant): quantize_to_minor_unit(Decimal("0.005"), "USD",
    rounding=ROUND_HALF_UP) == Decimal("0.01")."""
    return amount.quantize(minor_unit(code, default=default), rounding=rounding)


def is_multiple_of_minor_unit(amount: Decimal, code: str, *, default: int | None = None) -> bool:
    """True when `amount` is a whole number of the currency's minor units (1.5 and 1.50 USD
    are; 1.005 USD and 1.5 JPY are not). Exact for any finite Decimal, independent of the
    decimal context's precision; False for NaN and infinities."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return False
    places = currency_minor_units(code, default=default)
    _, digits, exponent = amount.as_tuple()
    significant = len(digits)
    while significant and digits[significant - 1] == 0:
        significant -= 1
    if not significant:  # zero, whatever its exponent
        return True
    return int(exponent) + (len(digits) - significant) >= -places


def decimal_text(value: Decimal) -> str:
    """An exact Decimal as a plain string: no exponent, no trailing zeros ("0.003", "12", "0").
    The one "decimal as text" of Aforo (API bodies, the rated wire, stored configs)."""
    text = str(value)  # C speed; exact, but may use an exponent or keep trailing zeros
    if "E" in text:
        if not value:
            return "0"
        text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# The ledgers' decimal columns (DecimalField keyword arguments). Parameters have at most 12
# places and units 12: products fit 26 places (percentage: 26).
AMOUNT = {"max_digits": 64, "decimal_places": 26}
UNITS = {"max_digits": 38, "decimal_places": 12}


# How people are shown an amount (the dashboard): rounded to the currency's minor unit with
# this mode, the exact figure kept beside it (a title on hover). Display only: stored amounts and
# invoice lines are never rounded through here.
DISPLAY_ROUNDING = "ROUND_HALF_UP"


def money_display(amount: Decimal, code: str) -> str:
    """`amount` to the currency's minor unit, HALF_UP, with thousands separators and no currency:
    ("1234.5", USD) -> "1,234.50"; ("0.0075", USD) -> "0.01"; ("1500.4", JPY) -> "1,500";
    ("-0.001", USD) -> "0.00". Unknown (legacy) codes show LEGACY_MINOR_UNITS places."""
    places = currency_minor_units(code, default=LEGACY_MINOR_UNITS)
    with localcontext() as context:
        context.prec = 80  # the ledgers' 64 digits quantize without InvalidOperation
        rounded = quantize_to_minor_unit(amount, code, rounding=DISPLAY_ROUNDING, default=LEGACY_MINOR_UNITS)
    if not rounded:
        rounded = abs(rounded)  # no "-0.00"
    return f"{rounded:,.{places}f}"
