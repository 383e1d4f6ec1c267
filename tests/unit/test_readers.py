import pytest

from triage.producer.readers import InputError, guess_format, read_records


def test_csv_with_ids_and_metadata():
    records = list(read_records("id,text,category\n1,hello there,x\n,second,y\n", "csv"))
    assert records[0].id == "1" and records[0].metadata == {"category": "x"}
    assert records[1].id and records[1].text == "second"


def test_csv_without_text_column_is_an_input_error():
    with pytest.raises(InputError, match="`text` column"):
        list(read_records("body\nhi\n", "csv", "f.csv"))


def test_jsonl_and_lines():
    jsonl = '{"id": "a", "text": "one"}\n\n{"text": "two"}\n'
    assert [r.text for r in read_records(jsonl, "jsonl")] == ["one", "two"]
    assert [r.text for r in read_records("one\n\ntwo\n", "lines")] == ["one", "two"]


def test_bad_jsonl_names_the_line():
    with pytest.raises(InputError, match=":2:"):
        list(read_records('{"text": "a"}\nnot json\n', "jsonl", "in"))


def test_format_guessing():
    assert guess_format("a.csv", "") == "csv"
    assert guess_format("-", '{"text": 1}') == "jsonl"
    assert guess_format("notes.txt", "hello") == "lines"
