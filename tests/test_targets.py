"""Target expressions: parsed values, masks, default and explicit sorts, one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from discovery.targets import (
    PROPERTIES,
    Condition,
    Target,
    TargetError,
    parse_sort,
    parse_target,
)


def gt(prop: str, x: float, inclusive: bool = False) -> Condition:
    return Condition(prop, lower=x, lower_inclusive=inclusive)


def lt(prop: str, x: float, inclusive: bool = False) -> Condition:
    return Condition(prop, upper=x, upper_inclusive=inclusive)


VALID = [
    ("bandgap>1.5", [gt("bandgap", 1.5)]),
    ("formation_energy<0", [lt("formation_energy", 0.0)]),
    ("tc>=30", [gt("tc", 30.0, inclusive=True)]),
    ("bandgap<=3", [lt("bandgap", 3.0, inclusive=True)]),
    ("1<bandgap<3", [Condition("bandgap", 1.0, False, 3.0, False)]),
    ("3>bandgap>1", [Condition("bandgap", 1.0, False, 3.0, False)]),
    ("1<=bandgap<3", [Condition("bandgap", 1.0, True, 3.0, False)]),
    ("3>=bandgap>=1", [Condition("bandgap", 1.0, True, 3.0, True)]),
    ("1<=bandgap<=1", [Condition("bandgap", 1.0, True, 1.0, True)]),
    ("1<bandgap", [gt("bandgap", 1.0)]),
    ("0>=formation_energy", [lt("formation_energy", 0.0, inclusive=True)]),
    ("formation_energy<-0.2", [lt("formation_energy", -0.2)]),
    ("formation_energy > +0.1", [gt("formation_energy", 0.1)]),
    ("bandgap>1e-3", [gt("bandgap", 1e-3)]),
    ("bandgap>2.5E2", [gt("bandgap", 250.0)]),
    ("bandgap>.5", [gt("bandgap", 0.5)]),
    ("bandgap>5.", [gt("bandgap", 5.0)]),
    ("  1 <\tbandgap\n< 3  ", [Condition("bandgap", 1.0, False, 3.0, False)]),
    ("bandgap>1.5 and formation_energy<0", [gt("bandgap", 1.5), lt("formation_energy", 0.0)]),
    ("bandgap>1.5 AND tc>=30", [gt("bandgap", 1.5), gt("tc", 30.0, inclusive=True)]),
    ("bandgap>1.5, tc>=30", [gt("bandgap", 1.5), gt("tc", 30.0, inclusive=True)]),
    ("bandgap>1.5,tc>=30 And formation_energy<0",
     [gt("bandgap", 1.5), gt("tc", 30.0, inclusive=True), lt("formation_energy", 0.0)]),
    ("bandgap>1 and bandgap<3", [gt("bandgap", 1.0), lt("bandgap", 3.0)]),
    ("bandgap>=1 and bandgap<=1", [gt("bandgap", 1.0, inclusive=True), lt("bandgap", 1.0, inclusive=True)]),
    ("bandgap>3 and tc<1", [gt("bandgap", 3.0), lt("tc", 1.0)]),
]


@pytest.mark.parametrize("text, expected", VALID)
def test_parse_valid(text: str, expected: list[Condition]) -> None:
    target = parse_target(text)
    assert target == Target(tuple(expected))
    assert target.conditions == tuple(expected)


@pytest.mark.parametrize("text, _", VALID)
def test_describe_round_trips(text: str, _: list[Condition]) -> None:
    target = parse_target(text)
    assert parse_target(target.describe()) == target
    assert "\n" not in target.describe()


def test_describe_canonical() -> None:
    assert parse_target("3 > bandgap>1,formation_energy<0").describe() == (
        "1 < bandgap < 3 and formation_energy < 0")
    assert parse_target("tc>=30 and 0.5>=formation_energy").describe() == (
        "tc >= 30 and formation_energy <= 0.5")
    assert str(parse_target("1<=bandgap<2.25")) == "1 <= bandgap < 2.25"


def test_properties_in_first_appearance_order() -> None:
    target = parse_target("tc>1, bandgap<3, tc<100, formation_energy<0")
    assert target.properties == ("tc", "bandgap", "formation_energy")


def test_property_units() -> None:
    assert PROPERTIES == {"bandgap": "eV", "formation_energy": "eV/atom", "tc": "K", "e_hull": "eV/atom"}


def test_custom_properties() -> None:
    props = {"e_hull": "eV/atom"}
    assert parse_target("e_hull<0.05", props) == Target((lt("e_hull", 0.05),))
    with pytest.raises(TargetError, match=r"unknown property 'bandgap'.*properties: e_hull \(eV/atom\);"):
        parse_target("bandgap>1", props)


@pytest.fixture
def predictions() -> pd.DataFrame:
    return pd.DataFrame({
        "formula": ["A", "B", "C", "D", "E", "F"],
        "bandgap": [0.5, 1.5, 2.0, np.nan, 3.0, 2.5],
        "formation_energy": [-1.0, -0.5, 0.2, -0.3, -0.1, np.nan],
        "tc": [10.0, 30.0, 40.0, 50.0, 29.9, 35.0],
    })


@pytest.mark.parametrize("text, expected", [
    ("bandgap>1.5", [False, False, True, False, True, True]),
    ("bandgap>=1.5", [False, True, True, False, True, True]),
    ("bandgap<2", [True, True, False, False, False, False]),
    ("1.5<bandgap<3", [False, False, True, False, False, True]),
    ("1.5<=bandgap<=3", [False, True, True, False, True, True]),
    ("formation_energy<0", [True, True, False, True, True, False]),
    ("bandgap>1 and formation_energy<0", [False, True, False, False, True, False]),
    ("bandgap>1, tc>=30", [False, True, True, False, False, True]),
    ("bandgap>1 and bandgap<2.5", [False, True, True, False, False, False]),
    ("bandgap>10", [False] * 6),
])
def test_mask(predictions: pd.DataFrame, text: str, expected: list[bool]) -> None:
    mask = parse_target(text).mask(predictions)
    assert mask.dtype == bool
    assert mask.tolist() == expected


def test_mask_nullable_and_missing_column() -> None:
    df = pd.DataFrame({"bandgap": pd.array([2.0, None, 0.1], dtype="Float64")})
    assert parse_target("bandgap>1").mask(df).tolist() == [True, False, False]
    with pytest.raises(KeyError, match="tc"):
        parse_target("tc>1").mask(df)


@pytest.mark.parametrize("text, expected", [
    ("bandgap>1.5", ("bandgap", True)),
    ("tc>=30", ("tc", True)),
    ("formation_energy<0", ("formation_energy", False)),
    ("bandgap<=3", ("bandgap", False)),
    ("1<bandgap", ("bandgap", True)),
    ("1<bandgap<3", ("bandgap", True)),
    ("3>=tc>1", ("tc", True)),
    ("formation_energy<0 and bandgap>1", ("formation_energy", False)),
])
def test_default_sort(text: str, expected: tuple[str, bool]) -> None:
    assert parse_target(text).default_sort() == expected


@pytest.mark.parametrize("text, expected", [
    ("bandgap", ("bandgap", True)),
    ("bandgap:desc", ("bandgap", True)),
    ("bandgap:asc", ("bandgap", False)),
    ("tc:ASC", ("tc", False)),
    ("-bandgap", ("bandgap", False)),
    (" -formation_energy ", ("formation_energy", False)),
    ("formation_energy : desc", ("formation_energy", True)),
])
def test_parse_sort(text: str, expected: tuple[str, bool]) -> None:
    assert parse_sort(text) == expected
    assert parse_sort(text, PROPERTIES) == expected


@pytest.mark.parametrize("text, bad", [
    ("bandgapp", "bandgapp"),
    ("bandgap:up", "up"),
    ("-bandgap:desc", "-"),
    ("", "empty"),
    (":asc", "missing property"),
])
def test_parse_sort_errors(text: str, bad: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_sort(text)
    msg = str(info.value)
    assert bad in msg
    assert "valid properties: bandgap (eV), formation_energy (eV/atom), tc (K)" in msg
    assert "\n" not in msg


INVALID = [
    ("", "empty target"),
    ("   \n\t ", "empty target"),
    ("bandgapp>1", "'bandgapp'"),
    ("Bandgap>1", "'Bandgap'"),
    ("bandgap>", "'bandgap>'"),
    ("bandgap> and tc<1", "'bandgap>'"),
    ("bandgap", "'bandgap'"),
    ("bandgap 1.5", "'1.5'"),
    ("bandgap=>1", "'=>'"),
    ("bandgap==2", "'=='"),
    ("bandgap=2", "'='"),
    ("bandgap!=2", "'!='"),
    ("bandgap<<2", "'<<'"),
    ("bandgap > < 1", "'<'"),
    ("3<bandgap<1", "'3<bandgap<1'"),
    ("1<bandgap<1", "'1<bandgap<1'"),
    ("1<bandgap<=1", "'1<bandgap<=1'"),
    ("1>bandgap>3", "'1>bandgap>3'"),
    ("1<bandgap>0", "'1<bandgap>0'"),
    ("bandgap<1<3", "'bandgap<1<3'"),
    ("1<bandgap<3<4", "'<'"),
    ("bandgap>1 and", "'and'"),
    ("and bandgap>1", "'and'"),
    ("bandgap>1 AND", "'AND'"),
    ("bandgap>1 and and tc<1", "'and'"),
    ("bandgap>1,", "','"),
    ("bandgap>1,,tc<1", "','"),
    ("bandgap>1 or tc>1", "'or'"),
    ("bandgap>1;", "';'"),
    ("bandgap>1 & tc>1", "'&'"),
    ("bandgap>$1", "'$'"),
    ("bandgap>1.5.2", "'.2'"),
    ("bandgap>1e999", "'1e999'"),
    ("bandgap>inf", "'inf'"),
    ("bandgap>tc", "'bandgap>tc'"),
    ("1.5", "'1.5'"),
    (">1.5", "'>'"),
    ("1<3", "'1<3'"),
    ("1<2<3", "'1<2<3'"),
    # issue 26 item 5: conditions on one property that no value meets together
    ("bandgap>3 and bandgap<1", "'bandgap > 3 and bandgap < 1' on bandgap cannot all hold"),
    ("bandgap>=1, bandgap<1", "cannot all hold"),
    ("bandgap>1 and tc>0 and bandgap<=1", "'bandgap > 1 and bandgap <= 1' on bandgap"),
    ("1<bandgap<3 and bandgap>5", "cannot all hold"),
]


@pytest.mark.parametrize("text, bad", INVALID)
def test_invalid_targets(text: str, bad: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(text)
    msg = str(info.value)
    assert bad in msg
    assert "valid properties: bandgap (eV), formation_energy (eV/atom), tc (K)" in msg
    assert "syntax: PROP>X" in msg
    assert "\n" not in msg and "\r" not in msg
    assert isinstance(info.value, ValueError)


def test_error_message_format() -> None:
    with pytest.raises(TargetError) as info:
        parse_target("bandgapp>1")
    assert str(info.value) == (
        "unknown property 'bandgapp' in target 'bandgapp>1'; valid properties: bandgap (eV), "
        "formation_energy (eV/atom), tc (K), e_hull (eV/atom); syntax: PROP>X, PROP<=X, LO<PROP<HI, "
        "joined by 'and' or ','")


def test_error_message_one_line_for_multiline_and_control_input() -> None:
    with pytest.raises(TargetError) as info:
        parse_target("bandgap>1\nand\r\ntc>1\x00")
    msg = str(info.value)
    assert "\\x00" in msg
    assert len(msg.splitlines()) == 1


def test_no_eval() -> None:
    with pytest.raises(TargetError, match="__import__"):
        parse_target("__import__('os').system('true')")
