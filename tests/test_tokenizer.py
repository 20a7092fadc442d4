"""clip/simple_tokenizer.py and clip.tokenize: OpenAI's BPE, checked against open_clip's."""
import open_clip.tokenizer
import pytest
import torch

import clip
from clip.simple_tokenizer import SimpleTokenizer, basic_clean, whitespace_clean

CORPUS = [
    "a photo of a dog.",
    "A Photo Of A GOLDEN Retriever",
    "golden retriever",
    "707-320",
    "Boeing 737-800, 3.14159 and 1,000,000 dollars!",
    "café naïve résumé Ångström crème brûlée",
    "Straße, Übergröße, ÇA, İstanbul",
    "東京タワー と 富士山",
    "Привет, мир! Καλημέρα κόσμε",
    "مرحبا بالعالم",
    "emoji 😀🐶🎉 👩‍👩‍👧 🇫🇷 flags",
    "html &amp; entities &lt;b&gt; &quot;quoted&quot; &#39;x&#39; &amp;amp; double",
    "punctuation!!! ??? ... --- ;;; (((brackets))) [x] {y} <z> @#$%^&*",
    "don't won't it's we're they've I'm you'll he'd",
    "tabs\tand\nnewlines\r\n  and   spaces   ",
    "mojibake: Ã©tÃ© â€œquotesâ€\x9d",
    "   ",
    "",
    "the quick brown fox jumps over the lazy dog " * 3,
    "x" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a_photo_of_a snake_case and kebab-case and CamelCaseWords",
    "The 2nd of 3rd 100th 1st",
    "Ελληνικά 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ｆｕｌｌｗｉｄｔｈ",
]
LONG = " ".join(["an extremely long caption with many words"] * 20)


@pytest.fixture(scope="module")
def tok():
    return SimpleTokenizer()


@pytest.fixture(scope="module")
def open_clip_tokenizer():
    return open_clip.tokenizer


@pytest.fixture(scope="module")
def open_clip_tok(open_clip_tokenizer):
    return open_clip_tokenizer.SimpleTokenizer()


def test_vocabulary(tok):
    assert len(tok.encoder) == len(tok.decoder) == 49408
    assert tok.encoder["<|startoftext|>"] == 49406
    assert tok.encoder["<|endoftext|>"] == 49407
    assert all(tok.decoder[i] == t for t, i in tok.encoder.items())
    assert len(tok.bpe_ranks) == 48894


def test_spec_examples(tok):
    assert len(tok.encode("a photo of a")) == 4
    assert len(tok.encode("golden retriever")) == 2
    assert len(tok.encode("707-320")) == 7  # digits are single tokens, punctuation separate


@pytest.mark.parametrize("text", CORPUS + [LONG])
def test_encode_equals_open_clip(tok, open_clip_tok, text):
    assert tok.encode(text) == open_clip_tok.encode(text)


def test_tokenize_equals_open_clip(open_clip_tokenizer):
    short = [t for t in CORPUS if len(t) < 100]
    assert torch.equal(clip.tokenize(short).long(), open_clip_tokenizer.tokenize(short))
    # open_clip always truncates (keeping EOT last); OpenAI does so only when asked.
    long = [LONG, "x" * 300]
    assert torch.equal(clip.tokenize(long, truncate=True).long(), open_clip_tokenizer.tokenize(long))
    assert torch.equal(clip.tokenize(short, context_length=16, truncate=True).long(),
                       open_clip_tokenizer.tokenize(short, context_length=16))


def test_tokenize_format():
    ids = clip.tokenize(["a dog", "a photo of a cat"])
    assert ids.shape == (2, 77) and ids.dtype == torch.int32
    assert ids[0, :4].tolist() == [49406, 320, 1929, 49407] and not ids[0, 4:].any()
    assert ids.argmax(-1).tolist() == [3, 6]  # EOT is the largest id
    assert torch.equal(clip.tokenize("a dog"), ids[:1])
    with pytest.raises(RuntimeError, match="too long"):
        clip.tokenize(LONG)
    cut = clip.tokenize([LONG], truncate=True)
    assert cut[0, -1] == 49407 and cut[0, 0] == 49406 and (cut[0] != 0).all()
    assert clip.tokenize(["a dog"], context_length=5).tolist() == [[49406, 320, 1929, 49407, 0]]


def test_literal_special_tokens_are_special(tok):
    # OpenAI's pattern matches the special tokens first (open_clip splits them into pieces).
    assert tok.encode("<|startoftext|>a dog<|endoftext|>") == [49406, 320, 1929, 49407]
    assert tok.encode("<|ENDOFTEXT|>") == [49407]  # text is lower-cased before matching
    assert tok.decode([49406, 320, 1929, 49407]) == "<|startoftext|>a dog <|endoftext|>"


@pytest.mark.parametrize("text", CORPUS)
def test_decode_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.encode(tok.decode(ids)) == ids


def test_decode_plain_words(tok):
    text = "a photo of a golden retriever"
    assert tok.decode(tok.encode(text)) == text + " "
    assert tok.decode(torch.tensor(tok.encode("café"))) == "café "


def test_cleaning():
    assert basic_clean("  &amp;amp;  ") == "&"
    assert whitespace_clean(" a \t\n b  ") == "a b"


def test_bpe_cache(tok):
    token = "".join(tok.byte_encoder[b] for b in "cachedwordxyzé".encode())
    first = tok.bpe(token)
    assert tok.cache[token] == first and tok.bpe(token) is first
