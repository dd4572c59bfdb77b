# SPDX-License-Identifier: Apache-2.0
"""Test-only reference token ids from the Hugging Face `tokenizers` library for the C++ WordPiece tokenizer.

Loads <model-dir>/tokenizer.json with truncation to --max-length and no padding, then writes one JSON
line per text: {"kind": ..., "text": ..., "ids": [...]}. Kinds:
  reuters  every non-null title and summary of the articles file, in file order
  long     several summaries joined, so the text runs past the maximum length
  hard     hand-written hard strings (accents, CJK, emoji, controls, long words, ...)
  sweep    every Unicode scalar value, 16 per text, each as "a<c>b <c> " (punctuation splitting,
           cleaning, accent stripping and lower-casing of every code point)
  bytes    raw byte strings, many not valid UTF-8: {"kind": "bytes", "hex": ..., "ids": [...]},
           ids of the text Python gets by decoding them with errors="replace"
The output is ASCII (JSON escapes), so any JSON reader gets the texts back exactly.

Usage: tokenizer_reference.py --model-dir DIR --articles FILE --out FILE [--max-length 256]
"""

import argparse
import json
import sys

from tokenizers import Tokenizer

HARD_STRINGS = [
    "",
    " ",
    "     ",
    "\t\n\r \u00a0\u3000",
    "Hello, world!",
    "Crème brûlée Ångström naïve",
    "CRÈME BRÛLÉE ÅNGSTRÖM NAÏVE café résumé façade coöperate",
    "e\u0301 a\u0300 o\u0308\u0304 n\u0303 c\u0327 i\u0307 combining chains a\u0301\u0323\u0302x",
    "\u0301\u0302 leading combining marks",
    "中文字符 and 日本語",
    "中文字符and日本語mixed漢字",
    "ひらがな カタカナ ｶﾀｶﾅ 한국어 텍스트 Hangul 가나다라마바사",
    "\uf900\uf901 compatibility ideographs \U0002f800 \U00020000\U0002b820\U0002b920",
    "emoji 😀😃🎉 👍🏽 🇩🇪 🥰 🫠 ❤️ ✨",
    "family 👨\u200d👩\u200d👧\u200d👦 zero\u200dwidth\u200cnon\u200bjoiner",
    "controls\x00nul\x01\x02\x07bell\x1b[31mred\x1b[0m\x7fdel\x0bvt\x0cff\x1c\x1d\x1e\x1f\x85nel",
    "tab\tnew\nline\r\nwindows",
    "non\u00a0breaking\u00a0space and\u2009thin\u202fnarrow\u2003em\u2028line\u2029para",
    "replacement \ufffd char\ufffdinside",
    "x" * 300,
    "a" * 100,
    "a" * 101,
    "é" * 100,
    "é" * 101,
    "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "mixed!!!punctuation???...---___ (parens) [brackets] {braces} <angles> \"quotes\" 'single' `back` ~tilde^ "
    "|pipe \\backslash /slash @at #hash $dollar %percent &amp *star +plus =eq ;semi :colon ,comma",
    "unicode punctuation: «guillemets» „low“ ‘curly’ — en–dash … ellipsis ¡inverted! ¿question? ·middle· §section ¶",
    "U.S. $1.5 mln vs 3.7% Q1/1987 e-mail co-operate don't it's 10,000.50 #1 @reuters",
    "Ελληνικά ΑΘΗΝΑ Σίσυφος ΟΔΥΣΣΕΥΣ Русский МОСКВА ёлка Ёлка Україна ґ",
    "İstanbul ıI ǅ ǈ ǋ ß ẞ ﬁ ﬂ ŉ Ωmega K Å ΐ",
    "Ⅻ ① ½ ² ™ © ® ℃ № ㎏",
    "Tiếng Việt có dấu Nguyễn ả ạ ừ ữ",
    "العربية עברית हिन्दी ภาษาไทย ქართული Հայերեն",
    "[CLS] already [SEP] special [MASK] tokens [UNK] [PAD] in text",
    "[cls] lower-case specials [mask] [Cls] [CLS[SEP]] x[MASK]y [[UNK]]",
    "\U0001d400\U0001d41a math bold \U0001f600 \U000e0041 tag \U000f0000 private \ue000 bmp private",
    "newer scripts \U00011f00\U00011f01 \U0001e4d0 \U00010d40 \u0897 \u2e5d \U00016d40",
]


def long_texts(records):
    """Texts longer than the maximum length: runs of consecutive summaries joined by spaces."""
    summaries = [r["summary"] for r in records if r.get("summary")]
    out = []
    for start in range(0, min(len(summaries), 400), 40):
        out.append(" ".join(summaries[start:start + 6]))
    words = " ".join(summaries[:50]).split()
    out.append(" ".join(words[:300]) + " [SEP] tail")
    out.append("hello " * 253 + "world")
    out.append("hello " * 254 + "world")
    out.append("hello " * 255 + "world")
    out.append("unbelievably " * 200)
    return out


def sweep_texts():
    texts = []
    chunk = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        chunk.append("a" + c + "b " + c + " ")
        if len(chunk) == 16:
            texts.append("".join(chunk))
            chunk = []
    if chunk:
        texts.append("".join(chunk))
    return texts


BYTE_STRINGS = [
    b"\xff",
    b"abc\xffdef",
    b"[CL\xffS] split by an invalid byte",
    b"\xc3[CLS]",
    b"caf\xc3",
    b"caf\xc3\xa9 ok",
    b"\xc0\xaf overlong slash",
    b"\xe0\x80\xaf overlong three",
    b"\xed\xa0\x80 surrogate \xed\xbf\xbf",
    b"\xf4\x90\x80\x80 above max",
    b"\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe",
    b"\xe2\x82 truncated \xe2\x82\xac euro \xf0\x9f\x98 cut \xf0\x9f\x98\x80 smile",
    b"\x80\x81\xbf lone continuations",
    b"a\xe4\xb8b \xe4\xb8\xad",
    b"\xce\x91\xce \xce\x92",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--articles", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    tokenizer = Tokenizer.from_file(f"{args.model_dir}/tokenizer.json")
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=args.max_length)

    records = []
    with open(args.articles, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    reuters = []
    for record in records:
        for field in ("title", "summary"):
            if record.get(field) is not None:
                reuters.append(record[field])

    groups = [("reuters", reuters), ("long", long_texts(records)), ("hard", HARD_STRINGS), ("sweep", sweep_texts())]
    counts = {}
    with open(args.out, "w", encoding="ascii") as out:
        for kind, texts in groups:
            for start in range(0, len(texts), 4096):
                batch = texts[start:start + 4096]
                for text, encoding in zip(batch, tokenizer.encode_batch(batch)):
                    out.write(json.dumps({"kind": kind, "text": text, "ids": encoding.ids}) + "\n")
            counts[kind] = len(texts)
        for raw in BYTE_STRINGS:
            text = raw.decode("utf-8", errors="replace")
            encoding = tokenizer.encode(text)
            out.write(json.dumps({"kind": "bytes", "hex": raw.hex(), "ids": encoding.ids}) + "\n")
        counts["bytes"] = len(BYTE_STRINGS)
    print(json.dumps(counts), file=sys.stderr)


if __name__ == "__main__":
    main()
