"""Validation at the edges of every value object (SPEC §3.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from todo_domain import InvalidTask, NewTask, Recurrence, TaskPatch
from todo_domain.values import Description, Owner, Tags, Title, utc


def codes(exc: pytest.ExceptionInfo[InvalidTask]) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in exc.value.errors}


def test_titles_are_trimmed() -> None:
    assert Title("  Buy milk \n") == "Buy milk"


def test_a_blank_title_is_too_short() -> None:
    with pytest.raises(InvalidTask) as exc:
        Title("   ")
    assert codes(exc) == {("title", "too_short")}


def test_a_title_of_255_characters_is_accepted_and_256_is_not() -> None:
    assert len(Title("x" * 255)) == 255
    with pytest.raises(InvalidTask) as exc:
        Title("x" * 256)
    assert codes(exc) == {("title", "too_long")}


def test_title_length_counts_characters_not_bytes() -> None:
    assert Title("😀" * 255) == "😀" * 255


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1f", "\x7f", "\t", "\n"])
def test_titles_refuse_control_characters(char: str) -> None:
    with pytest.raises(InvalidTask) as exc:
        Title(f"a{char}b")
    assert codes(exc) == {("title", "control_character")}


def test_titles_refuse_lone_surrogates() -> None:
    with pytest.raises(InvalidTask) as exc:
        Title("a\ud800b")
    assert codes(exc) == {("title", "invalid_unicode")}


def test_a_title_must_be_a_string() -> None:
    with pytest.raises(InvalidTask) as exc:
        Title(42)
    assert codes(exc) == {("title", "type_error")}


def test_descriptions_allow_newlines_and_tabs_but_not_nul() -> None:
    assert Description("line 1\n\tline 2\r\n") == "line 1\n\tline 2\r\n"
    with pytest.raises(InvalidTask) as exc:
        Description("a\x00b")
    assert codes(exc) == {("description", "control_character")}


def test_a_description_of_10000_characters_is_accepted_and_10001_is_not() -> None:
    assert len(Description("d" * 10_000)) == 10_000
    with pytest.raises(InvalidTask) as exc:
        Description("d" * 10_001)
    assert codes(exc) == {("description", "too_long")}


def test_an_empty_description_means_none() -> None:
    assert Description.of("") is None
    assert NewTask(title="t", description="").description is None


def test_tags_are_trimmed_lowercased_deduplicated_and_sorted() -> None:
    assert Tags([" Work", "home", "HOME ", "errands"]) == ("errands", "home", "work")


def test_twenty_tags_are_accepted_and_twenty_one_are_not() -> None:
    assert len(Tags(f"t{i}" for i in range(20))) == 20
    with pytest.raises(InvalidTask) as exc:
        Tags(f"t{i}" for i in range(21))
    assert codes(exc) == {("tags", "too_many")}


def test_duplicates_collapse_before_the_tag_limit_applies() -> None:
    assert len(Tags([f"t{i}" for i in range(20)] + ["T0", "t1 "])) == 20


@pytest.mark.parametrize(
    ("tag", "code"),
    [("", "too_short"), ("  ", "too_short"), ("x" * 51, "too_long"), ("a\x00", "control_character")],
)
def test_bad_tags_are_refused(tag: str, code: str) -> None:
    with pytest.raises(InvalidTask) as exc:
        Tags([tag])
    assert codes(exc) == {("tags", code)}


def test_a_bare_string_is_not_a_list_of_tags() -> None:
    with pytest.raises(InvalidTask):
        Tags("home")


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(InvalidTask) as exc:
        utc("due_date", datetime(2026, 1, 1))
    assert codes(exc) == {("due_date", "naive_datetime")}


def test_aware_datetimes_are_converted_to_utc() -> None:
    moment = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    converted = utc("due_date", moment)
    assert converted == moment
    assert converted is not None
    assert converted.tzinfo is UTC
    assert converted.hour == 6


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
    ],
)
def test_datetimes_that_overflow_in_utc_are_refused(moment: datetime) -> None:
    with pytest.raises(InvalidTask) as exc:
        utc("due_date", moment)
    assert codes(exc) == {("due_date", "out_of_range")}


def test_year_1_and_year_9999_in_utc_are_accepted() -> None:
    assert utc("due_date", datetime(1, 1, 1, tzinfo=UTC)) == datetime(1, 1, 1, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert utc("due_date", last) == last


@pytest.mark.parametrize("interval", [0, 366, -1, True])
def test_recurrence_intervals_outside_1_to_365_are_refused(interval: int) -> None:
    with pytest.raises(InvalidTask):
        Recurrence("daily", interval)  # type: ignore[arg-type]


def test_an_unknown_frequency_is_refused() -> None:
    with pytest.raises(InvalidTask) as exc:
        Recurrence("hourly")  # type: ignore[arg-type]
    assert codes(exc) == {("recurrence.frequency", "invalid_choice")}


def test_a_recurrence_needs_a_due_date() -> None:
    with pytest.raises(InvalidTask) as exc:
        NewTask(title="t", recurrence=Recurrence("daily"))  # type: ignore[arg-type]
    assert codes(exc) == {("recurrence", "recurrence_needs_due_date")}


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidTask) as exc:
        NewTask(title="", description="\x00", tags=[""], due_date=datetime(2026, 1, 1))
    assert {f for f, _ in codes(exc)} == {"title", "description", "tags", "due_date"}


def test_status_and_completed_must_agree() -> None:
    with pytest.raises(InvalidTask) as exc:
        NewTask(title="t", status="in_progress", completed=True)
    assert codes(exc) == {("completed", "status_mismatch")}
    with pytest.raises(InvalidTask):
        TaskPatch(status="completed", completed=False)


def test_completed_true_alone_means_status_completed() -> None:
    assert NewTask(title="t", completed=True).status == "completed"


def test_a_patch_cannot_null_the_title() -> None:
    with pytest.raises(InvalidTask) as exc:
        TaskPatch(title=None)  # type: ignore[arg-type]
    assert codes(exc) == {("title", "null_not_allowed")}


def test_owners_are_one_to_255_characters() -> None:
    assert Owner("x" * 255) == "x" * 255
    for bad in ("", "x" * 256, "a\x00"):
        with pytest.raises(InvalidTask):
            Owner(bad)


def test_drafts_carry_value_objects_after_their_one_parsing_step() -> None:
    draft = NewTask(
        title="  Buy milk ", description="", priority="high", tags=["Home", "home"], completed=True
    )
    assert type(draft.title) is Title
    assert draft.title == "Buy milk"
    assert draft.description is None
    assert type(draft.tags) is Tags
    assert draft.tags == ("home",)
    assert draft.priority == "high"
    assert draft.status == "completed"  # completed folded into status
    patch = TaskPatch(title=" t ", tags=None)
    assert type(patch.title) is Title
    assert patch.tags == Tags()
    assert patch.given() == {"title": "t", "tags": Tags()}


def test_editable_fields_are_derived_from_the_draft() -> None:
    from dataclasses import fields

    from todo_domain import EDITABLE_FIELDS, Task

    task_fields = {f.name for f in fields(Task)}
    assert set(EDITABLE_FIELDS) <= task_fields
    assert set(EDITABLE_FIELDS) == {f.name for f in fields(NewTask)} - {"status", "parent_id"}


def test_as_utc_reads_naive_values_as_utc_and_converts_aware_ones() -> None:
    from todo_domain.values import as_utc

    assert as_utc(datetime(2026, 3, 1, 9)) == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert as_utc(datetime(2026, 3, 1, 9)).tzinfo is UTC
    eastern = datetime(2026, 3, 1, 9, tzinfo=timezone(timedelta(hours=-5)))
    assert as_utc(eastern) == datetime(2026, 3, 1, 14, tzinfo=UTC)
    assert as_utc(eastern).tzinfo is UTC
    with pytest.raises(OverflowError):
        as_utc(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))


@pytest.mark.parametrize(
    "title",
    [
        "\u200b",
        "\ufeff",
        " \u200b\u2060 ",
        "a\u0085b",
        "a\u009fb",
        "evil\u202etxt.exe",
        "a\u2066b\u2069",
        "a\u2028b",
        "a\u2029b",
    ],
)
def test_titles_a_caller_sends_are_visible_and_do_not_mislead(title: str) -> None:
    with pytest.raises(InvalidTask) as exc:
        NewTask(title=title)
    assert {f for f, _ in codes(exc)} == {"title"}
    with pytest.raises(InvalidTask):
        TaskPatch(title=title)


@pytest.mark.parametrize("tag", ["\u200b", "a\u202eb", "a\u0080", "a\u2028b"])
def test_tags_a_caller_sends_are_visible_and_do_not_mislead(tag: str) -> None:
    with pytest.raises(InvalidTask) as exc:
        NewTask(title="t", tags=[tag])
    assert {f for f, _ in codes(exc)} == {"tags"}
    with pytest.raises(InvalidTask):
        TaskPatch(add_tags=[tag])


def test_emoji_sequences_and_ordinary_unicode_stay_valid() -> None:
    for title in (
        "\U0001f469\u200d\U0001f4bb code review",
        "Caf\u00e9 \u00fcber \u65e5\u672c",
        "\u05e9\u05dc\u05d5\u05dd",
    ):
        assert NewTask(title=title).title == title


def test_stored_text_is_read_under_the_storage_rules_only() -> None:
    """A task written before the input rules still loads (rows are rebuilt with Title())."""
    assert Title("a\u2028b") == "a\u2028b"
    assert Tags(["a\u202eb"]) == ("a\u202eb",)


@pytest.mark.parametrize("subject", ["a\u202eb", "\u200b", "x\u0085"])
def test_owners_do_not_mislead(subject: str) -> None:
    with pytest.raises(InvalidTask):
        Owner(subject)


def test_the_public_surface_is_importable_from_the_domain_package() -> None:
    import todo_domain

    for name in ("ChangeSet", "ChangeToken", "Creation", "Unset", "IdempotencyKeyInFlight", "TimeZone"):
        assert name in todo_domain.__all__
        assert getattr(todo_domain, name) is not None
    assert todo_domain.__version__.split(".")[0].isdigit()
