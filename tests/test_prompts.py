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


@pytest.mark.parametrize(("text", "expected"), [
    ("the lever works abtain abtain abtain abtain", "the lever works abtain"),  # a one-word loop
    ("so the so the so the so the end", "so the end"),  # a two-word loop, text after it kept
    ("an button abtain abtain abtain abt", "an button abtain"),  # cut off by the token budget mid-copy
    ("so the so the so the so", "so the"),
    ("no no no nothing", "no nothing"),  # text after a loop is kept unless it is a cut-off copy
    ("It works. it works, IT WORKS! yes", "It works. yes"),  # case and punctuation do not hide a loop
    ("very very good", "very very good"),  # two in a row is speech, not a loop
    ("we saw the moon and the moon saw us", "we saw the moon and the moon saw us"),  # not consecutive
    ("  spaced   text  kept ", "  spaced   text  kept "),  # nothing trimmed: returned exactly as given
    ("", ""),
])
def test_trim_loops_collapses_three_or_more_consecutive_copies(text, expected):
    assert prompts.trim_loops(text) == expected


def test_trim_loops_threshold_and_off():
    assert prompts.trim_loops("no no no", 0) == "no no no"  # off
    assert prompts.trim_loops("very very good", 2) == "very good"
    assert prompts.trim_loops("a b c d e f g h i a b c d e f g h i a b c d e f g h i") != "a b c d e f g h i"  # > 8
    with pytest.raises(ValueError, match="loop_trim must be 0 \\(off\\) or >= 2 repeats, got 1"):
        prompts.trim_loops("x", 1)
