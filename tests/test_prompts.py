import pytest

from sicl.episodes import prompts


def test_instructions_per_task():
    assert prompts.instruction("asr") == "Transcribe the audio."
    assert prompts.instruction("asr", preset="ticl") == "Transcribe the audio:"
    assert prompts.instruction("st", target_lang="zx") == "Translate the audio into Zexi."
    assert prompts.instruction("st", target_lang="de") == "Translate the audio into German."
    text = prompts.instruction("sqa", "How many cats?", ["two", "three"])
    assert text == "How many cats?\nA. two\nB. three\n" + prompts.CHOICE_INSTRUCTION
    with pytest.raises(ValueError):
        prompts.instruction("asr", preset="nope")


def test_answer_format():
    assert prompts.answer_text("hello world") == "hello world"
    assert prompts.answer_text("hello world", "asr", "ticl") == 'The transcription is: "hello world"'
    assert prompts.answer_text("bonjour", "st", "ticl") == "bonjour"


@pytest.mark.parametrize("text,expected", [
    ('The transcription is: "the cat sat"', "the cat sat"),
    ('the cat sat<|im_end|>junk', "the cat sat"),
    ('"the cat sat".', "the cat sat"),
    ("Transcription: the cat sat", "the cat sat"),
    ("the cat sat", "the cat sat"),
    ("  “quoted”  ", "quoted"),
])
def test_extract_answer_strips_boilerplate(text, expected):
    assert prompts.extract_answer(text, "ticl") == expected
    assert prompts.extract_answer(text, "plain") == expected


def test_extract_answer_round_trips_training_targets():
    for target in ["the cat sat", "don't stop", "eight"]:
        assert prompts.extract_answer(prompts.answer_text(target, "asr", "ticl"), "ticl") == target


def test_extract_answer_maps_option_letters():
    choices = ["four", "eight", "nine"]
    assert prompts.extract_answer("B", choices=choices) == "eight"
    assert prompts.extract_answer("(C) nine", choices=choices) == "nine"
    assert prompts.extract_answer("The answer is: A.", choices=choices) == "four"
    assert prompts.extract_answer("eight", choices=choices) == "eight"
