"""tiny-omni v2 pretraining data: open vocabulary, unheard words, multi-clip chats, text-only copying data,
and the in-context probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sicl.data.synth import open_text as O
from sicl.data.synth import text as T
from sicl.episodes import prompts
from sicl.models.processor import num_audio_tokens
from sicl.pretrain import data as D
from sicl.testing import tone
from tests.test_tiny_omni import Item, build_tiny


@pytest.fixture(scope="module")
def tiny():
    return build_tiny()


def test_lexicon_is_large_and_unheard_words_are_never_spoken():
    assert len(O.words()) == 8000 and len(set(O.words())) == 8000
    unheard, heard = set(O.unheard_words()), set(O.heard_words())
    assert 600 <= len(unheard) <= 1200 and not unheard & heard
    assert not (O.domain_words() & heard) and not (unheard & T.ADULT_VOCAB)
    rng = np.random.default_rng(3)
    sentences = [O.open_sentence(rng).split() for _ in range(3000)]
    spoken = {w for s in sentences for w in s}
    assert len(spoken) > 1500  # open vocabulary, not ~55 templates
    assert not spoken & unheard
    # child-domain words are rare in speech: a few percent of sentences carry one, never more than one
    with_domain = [s for s in sentences if set(s) & O.domain_words()]
    assert 0.02 <= len(with_domain) / len(sentences) <= 0.12
    assert all(len(set(s) & O.domain_words()) <= 2 for s in with_domain)
    # the probe set is made of unheard words only; text-only data may contain them (spellable)
    assert set(O.unheard_sentence(rng).split()) <= unheard
    text_words = set()
    for _ in range(3000):
        turns, doc = O.text_example(rng)
        text_words |= set((doc or " ".join(a for _, a in turns)).replace(".", " ").split())
    assert text_words & unheard and text_words & O.domain_words()


def test_prefix_probe_answer_is_the_only_listed_word_with_that_prefix():
    rng = np.random.default_rng(5)
    for _ in range(50):
        prompt, answer = O.prefix_probe(rng)
        listed = prompt.split("\n")[0].removeprefix("Words: ").rstrip(".").split()
        prefix = prompt.rstrip("?").split()[-1]
        assert len(listed) == 5 and answer in listed and [w for w in listed if w.startswith(prefix)] == [answer]


def test_text_batches_are_fresh_examples_never_replayed(tiny):
    _, processor = tiny
    stream = D.ClipStream.__new__(D.ClipStream)  # no synthesis workers: text batches need none
    stream.fresh_text, stream.text_rng = True, np.random.default_rng(0)
    stream.buffers = {"audio": []}
    assert stream.ready("text") and not stream.ready("single")
    a = stream.batch(64, "text", processor.tokenizer)
    b = stream.batch(64, "text", processor.tokenizer)
    seqs = {tuple(s.input_ids.tolist()) for s in a + b}
    assert len(seqs) >= 120 and all(s.kind == "text" and not s.features for s in a + b)


def test_number_words():
    assert O.number_words(0) == "zero" and O.number_words(40) == "forty"
    assert O.number_words(105) == "one hundred and five"
    assert O.number_words(2013) == "two thousand and thirteen" and O.number_words(1250) == "one thousand two hundred and fifty"


def test_copy_probe_answer_follows_its_cue():
    prompt, answer = O.copy_probe(np.random.default_rng(1))
    listed = prompt.split("\n")[0].removeprefix("Words: ").rstrip(".").split()
    cue = prompt.split("after ")[1].rstrip("?")
    assert len(listed) == 5 and listed[listed.index(cue) + 1] == answer


def _items():
    return [Item("asr", "one two three", tone(1.0, freq=200)), Item("st", "zi zo", tone(0.7), target_lang="zx",
                                                                     transcript="the dog"),
            Item("sqa", "two", tone(1.2), question="how many", choices=["one", "two"], transcript="two dogs")]


def test_max_replay_makes_the_trainer_wait_for_fresh_clips(tiny):
    import queue

    _, processor = tiny
    tok = processor.tokenizer
    stream = D.ClipStream.__new__(D.ClipStream)  # a plain queue stands in for the synthesis workers
    stream.q, stream.procs, stream.rng = queue.Queue(), [], __import__("random").Random(0)
    stream.buffers, stream.buffer_size, stream.received, stream.drawn = {"audio": []}, 100, 0, 0
    samples = [D.featurize(it, tok) for it in _items()]
    for s in samples + samples[:1]:
        stream.q.put(s)
    assert stream.drain(0) == 4 and stream.received == 4
    stream.batch(16, "single")
    assert stream.drawn == 16 and stream.owed(0) == 0 and stream.owed(16) == 0
    assert stream.owed(2.0) == 4 and stream.owed(3.0) == 2  # ceil(16 / 3) = 6 clips, 4 received
    with pytest.raises(RuntimeError, match="workers died"):  # it waits for clips (none can come here)
        stream.drain(stream.owed(2.0))
    for s in samples + samples[:1]:
        stream.q.put(s)
    stream.drain(stream.owed(2.0))
    assert stream.received == 8 and stream.owed(2.0) == 0
    stream.batch(3, "chat", tok, (2, 2))  # a chat draws one clip per turn
    assert stream.drawn == 22 and stream.owed(2.0) == 3


def test_composed_chat_equals_the_chat_template_and_labels_every_answer(tiny):
    _, processor = tiny
    tok = processor.tokenizer
    items = _items()
    singles = [D.featurize(it, tok) for it in items]
    chat = D.compose_chat(singles, tok)
    msgs = []
    for it in items:
        msgs += [{"role": "user", "content": prompts.user_content(prompts.example_instruction(it))},
                 {"role": "assistant", "content": it.target}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    parts = text.split(tok.audio_token)
    text = parts[0] + "".join(tok.audio_token * num_audio_tokens(s.features[0].shape[1]) + p
                              for s, p in zip(singles, parts[1:], strict=True))
    ref = tok(text, add_special_tokens=False)["input_ids"]
    assert chat.input_ids.tolist() == ref[: len(chat.input_ids)] and len(ref) == len(chat.input_ids) + 1
    assert [tok.decode(chat.input_ids[a:b]) for a, b in chat.spans] == [f"{it.target}<|im_end|>" for it in items]
    batch = D.collate([chat, singles[0]], tok.pad_token_id)
    assert batch["input_features"].shape[0] == 4 and batch["ctc_lengths"].tolist() == [13, 7, 8, 13]
    labelled = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert tok.decode(labelled) == "".join(f"{it.target}<|im_end|>" for it in items)


def test_text_only_examples_label_answers_or_the_whole_document(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    chat = D.featurize_text([("Say: a b", "a b"), ("Words: x y.\nWhich word comes after x?", "y")], None, tok)
    assert [tok.decode(chat.input_ids[a:b]) for a, b in chat.spans] == ["a b<|im_end|>", "y<|im_end|>"]
    doc = D.featurize_text([], "one two. one two.", tok)
    assert doc.spans == [(1, len(doc.input_ids))] and not doc.features
    batch = D.collate([chat, doc], tok.pad_token_id)
    assert "input_features" not in batch
    from sicl.pretrain.train import CtcHead, attach_frames_hook, losses

    lm, ctc = losses(model, CtcHead(64), batch, attach_frames_hook(model))
    assert torch.isfinite(lm) and ctc.item() == 0.0


def test_probes_run_on_a_model(tiny):
    from sicl.pretrain.evaluate import chat_prompt_ids, probe_copy, probe_icl

    model, processor = tiny
    tok = processor.tokenizer
    items = _items()[:1] * 4
    ids, feats = chat_prompt_ids(tok, [(items[0], "one two three"), (items[1], None)])
    assert len(feats) == 2 and ids.count(tok.convert_tokens_to_ids(tok.audio_token)) == sum(
        num_audio_tokens(f.shape[1]) for f in feats)
    res = probe_icl(model, tok, items, k=2)
    assert res["k"] == 2 and res["n"] == 4 and res["wer"] >= 0
    copy = probe_copy(model, tok, n=4)
    assert copy["n"] == 4 and 0.0 <= copy["acc"] <= 1.0


def test_pretrain_items_kinds_and_voices():
    from sicl.data.synth import pretrain_items as P
    from sicl.data.synth import voices as V

    pop = V.pretrain_population()
    assert len(pop) == 1100 and any(v.shift > 1.0 for v in pop) and max(v.pitch for v in pop) > 85
    a = P.generate_items("unheard", 3, seed=5)
    b = P.generate_items("unheard", 3, seed=5)
    assert [x.target for x in a] == [x.target for x in b] and all(np.array_equal(x.wav, y.wav) for x, y in zip(a, b, strict=True))
    assert all(set(x.target.split()) <= set(O.unheard_words()) and x.wav.size > 8000 for x in a)
    with pytest.raises(ValueError, match="unknown kind"):
        P.generate_items("nope", 1, seed=0)


def test_contextual_asr_speaks_only_new_words_that_its_hint_spells():
    """tiny-omni v4's contextual ASR: the clip's made-up words are listed in the hint (with distractors), no
    unheard word is spoken, and some examples list words the clip does not speak."""
    lexicon = set(O.words()) | O.domain_words() | T.ADULT_VOCAB | O.NUMBER_WORDS
    unheard = set(O.unheard_words())
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(600):
        spoken, hint = O.context_sentence(rng)
        words = spoken.split()
        hint_words = {w.strip(".,:") for w in hint.split()[1:]}
        new = [w for w in words if w not in lexicon]
        assert not set(words) & unheard  # (domain words: as rare as in open_sentence, which this builds on)
        assert len(new) <= 2 and set(new) <= hint_words, (spoken, hint)
        assert hint_words - set(new)  # always at least one distractor
        hits += bool(new)
    assert 0.7 <= hits / 600 <= 0.9
    # v5's "Earlier transcripts" hint: a transcript-like sentence per listed word, sharing words with the clip
    related = [(s, h) for s, h in (O.context_sentence(rng) for _ in range(300)) if h.startswith("Earlier")]
    assert len(related) > 40
    for spoken, hint in related:
        sents = [x.split() for x in hint.split(": ", 1)[1].split(".") if x.strip()]
        assert len(sents) >= 2 and all(set(x) & set(spoken.split()) for x in sents), (spoken, hint)


def test_hint_goes_before_the_instruction_and_is_scored(tiny):
    from sicl.data.synth import pretrain_items as P
    from sicl.pretrain.evaluate import chat_prompt_ids, new_word_hit

    _, processor = tiny
    tok = processor.tokenizer
    items = P.generate_items("context", 6, seed=2)
    assert all(it.task == "asr" and it.meta["hint"] for it in items)
    it = items[0]
    text = D.prompt_text(tok, it, 3)
    assert text.index(it.meta["hint"]) < text.index(prompts.ASR_INSTRUCTION) and text.count(tok.audio_token) == 3
    ids, feats = chat_prompt_ids(tok, [(it, None)])
    assert tok.decode(ids).count(it.meta["hint"]) == 1 and len(feats) == 1
    plain = Item("asr", "hello", tone(1.0))
    assert D.item_instruction(plain) == prompts.ASR_INSTRUCTION
    # the hit rate counts only made-up words that are spoken and listed
    new = [w for x in items for w in x.target.split() if w not in O.words() and w in x.meta["hint"]]
    assert new, "no example speaks a listed new word"
    assert new_word_hit(items, [x.target for x in items]) == 1.0
    assert new_word_hit(items, [" ".join(w for w in x.target.split() if w in O.words()) for x in items]) == 0.0


def test_shared_chat_labels_a_turn_only_once_its_made_up_words_were_spoken_before():
    """tiny-omni v8's shared-word chats: a turn carries the loss only when each made-up word it speaks was
    spoken (and so spelled) by an earlier turn; most later turns come back to an earlier turn's word."""
    lexicon = set(O.words()) | O.domain_words() | T.ADULT_VOCAB | O.NUMBER_WORDS
    rng = np.random.default_rng(4)
    later = reused = labelled_later = 0
    for _ in range(400):
        turns = O.shared_chat(rng)
        assert O.SHARED_CLIPS[0] <= len(turns) <= O.SHARED_CLIPS[1]
        said: set[str] = set()
        for i, (text, labelled) in enumerate(turns):
            new = {w for w in text.split() if w not in lexicon}
            assert labelled == (new <= said), (i, text, said)
            if i:
                later += 1
                reused += bool(new & said)
                labelled_later += labelled
            else:
                assert new and not labelled  # the first turn introduces a name: context, never scored
            said |= new
    assert reused / later > 0.7 and 0.6 < labelled_later / later < 0.95


def test_respell_gives_another_spelling_with_the_same_sound():
    """tiny-omni v9: a respelt made-up word is spelled differently but espeak-ng says it the same, so only a
    transcript (not the sound) can give its spelling."""
    from sicl.data.synth.tts import phonemes

    assert phonemes("fanbick") == phonemes("phanbick") != phonemes("panbick")
    rng = np.random.default_rng(5)
    lexicon = set(O.words()) | O.domain_words()
    done = 0
    for _ in range(60):
        w = O.spoken_nonce_word(rng)
        r = O.respell(w, rng)
        if r is None:
            continue
        done += 1
        assert r != w and r not in lexicon and phonemes(r) == phonemes(w), (w, r)
        assert not O._TRIPLE.search(r)
    assert done >= 50  # almost every made-up word has a respelling


def test_respelt_chats_speak_respelt_names_and_keep_the_labelling_rule():
    from sicl.data.synth import pretrain_items as P

    lexicon = set(O.words()) | O.domain_words() | T.ADULT_VOCAB | O.NUMBER_WORDS
    rng = np.random.default_rng(6)
    for _ in range(40):
        turns = O.shared_chat(rng, respelt=True)
        said: set[str] = set()
        for text, labelled in turns:
            new = {w for w in text.split() if w not in lexicon}
            assert labelled == (new <= said)
            said |= new
    assert "respelt" in P.CHAT_KINDS and "shared" in P.CHAT_KINDS
    items = P.generate_items("respelt", 6, seed=2)
    assert all("chat" in it.meta and "labelled" in it.meta for it in items)


def test_shared_chats_come_whole_and_replay_whole(tiny):
    import queue

    from sicl.data.synth import pretrain_items as P

    _, processor = tiny
    tok = processor.tokenizer
    items = P.generate_items("shared", 7, seed=3)
    chat_ids = [it.meta["chat"] for it in items]
    assert chat_ids == sorted(chat_ids) and all(chat_ids.count(c) >= 2 for c in set(chat_ids))
    assert len({it.voice.speaker for it in items}) > 1 and all(it.task == "asr" for it in items)
    chats = list(D._shared_chats(iter(items), tok, None, "plain"))
    groups = [[it for it in items if it.meta["chat"] == c] for c in sorted(set(chat_ids))]
    groups = [g for g in groups if any(it.meta["labelled"] for it in g)]
    assert len(chats) == len(groups) >= 1
    for chat, turns in zip(chats, groups, strict=True):
        assert chat.kind == "shared" and len(chat.features) == len(chat.ctc) == len(turns)
        scored = [it.target for it in turns if it.meta["labelled"]]
        assert [tok.decode(chat.input_ids[a:b]) for a, b in chat.spans] == [f"{t}<|im_end|>" for t in scored]
        assert not turns[0].meta["labelled"] and turns[0].target in tok.decode(chat.input_ids)  # context turn
    stream = D.ClipStream.__new__(D.ClipStream)
    stream.q, stream.procs, stream.rng = queue.Queue(), [], __import__("random").Random(0)
    stream.buffers, stream.buffer_size, stream.received, stream.drawn = {"audio": []}, 100, 0, 0
    stream.fresh_text = False
    assert not stream.ready("shared")
    for c in chats:
        stream.q.put(c)
    stream.drain(0)
    assert stream.received == sum(len(c.features) for c in chats) and stream.buffers["audio"] == []
    assert stream.ready("shared") and not stream.ready("single")
    out = stream.batch(5, "shared")
    assert all(c.kind == "shared" for c in out) and stream.drawn == sum(len(c.features) for c in out)


def test_respelt_probe_asks_a_later_turn_for_a_name_spelled_only_in_an_earlier_turn(tiny):
    """probe_shared(kind="respelt") on a real (tiny, untrained) thinker: each query is a labelled later turn whose
    made-up words an earlier turn spoke and spelled; an exact answer scores hit 1, the model's guess 0."""
    from sicl.data.synth import pretrain_items as P
    from sicl.pretrain import evaluate as E

    model, processor = tiny
    res = E.probe_shared(model, processor.tokenizer, P, n=12, kind="respelt", batch_size=4)
    assert res["n"] >= 1 and set(res) >= {"wer_ctx", "hit_ctx", "wer_alone", "hit_alone"}
    assert 0.0 <= res["hit_ctx"] <= 1.0 and res["wer_ctx"] > 0.5  # an untrained model does not transcribe
    query, _ = res["samples"][0]
    lexicon = set(O.words())
    assert any(w not in lexicon for w in query.split())  # the query speaks a respelt name


def test_voice_chats_keep_one_unusual_voice_per_chat_and_score_every_turn_after_the_first(tiny):
    """The ``voice`` kind (same-voice chats): whole chats of 2-5 clips, one fresh strongly shifted speaker per chat
    (never in world v2's child range), the first turn context only; its probe asks each chat's last turn with the
    same speaker's earlier turns and alone."""
    from sicl.data.synth import pretrain_items as P
    from sicl.data.synth import voices as V
    from sicl.pretrain import evaluate as E

    assert "voice" in P.CHAT_KINDS and "voice" in P.KINDS
    items = P.generate_items("voice", 9, seed=4)
    chats: dict[int, list] = {}
    for it in items:
        chats.setdefault(it.meta["chat"], []).append(it)
    assert [it.meta["chat"] for it in items] == sorted(it.meta["chat"] for it in items) and len(chats) >= 2
    for turns in chats.values():
        assert 2 <= len(turns) <= 5 and len({it.voice for it in turns}) == 1
        assert [it.meta["labelled"] for it in turns] == [False] + [True] * (len(turns) - 1)
        shift = turns[0].voice.shift
        assert 0.82 <= shift <= 0.95 or 1.14 <= shift <= 1.25  # never a world v2 child's 1.03-1.13
    assert len({turns[0].voice.speaker for turns in chats.values()}) == len(chats)
    rng = np.random.default_rng(0)
    assert all(not (1.0 < V.sample_odd(rng, "x").shift < 1.14) for _ in range(200))
    model, processor = tiny
    res = E.probe_shared(model, processor.tokenizer, P, n=9, kind="voice", batch_size=4)
    assert res["n"] >= 2 and set(res) == {"n", "wer_ctx", "wer_alone", "samples"}
