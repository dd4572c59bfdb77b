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

With --cpp-tables it instead prints the exception tables of src/embed/embed_tokenizer.cpp: the code
points where HF's character classes (Rust crate unicode_categories 0.1.1, frozen at an older
Unicode), decompositions or lower-case mappings differ from the system's libutf8proc. Regenerate
them when the sweep cases start to differ after a utf8proc upgrade.

Usage: tokenizer_reference.py --model-dir DIR --articles FILE --out FILE [--max-length 256]
       tokenizer_reference.py --cpp-tables
"""

import argparse
import ctypes
import ctypes.util
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


# Rust's char::is_whitespace (White_Space), which HF uses and the C++ code lists literally.
WHITESPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
              0x202F, 0x205F, 0x3000}


def cpp_tables():
    """Prints the C++ exception tables: HF behaviour per code point against libutf8proc's."""
    from tokenizers import normalizers, pre_tokenizers

    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
    lib.utf8proc_category.restype = ctypes.c_int
    lib.utf8proc_tolower.restype = ctypes.c_int32
    lib.utf8proc_NFD.restype = ctypes.c_void_p
    lib.utf8proc_NFD.argtypes = [ctypes.c_char_p]
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]

    def utf8proc_class(cp):
        # utf8proc_category_t: 6 = Mn, 12..18 = Pc..Po, 26 = Cc, 27 = Cf, 29 = Co
        category = lib.utf8proc_category(cp)
        if category in (26, 27, 29):
            return "control"
        if category == 6:
            return "mark"
        if 12 <= category <= 18:
            return "punct"
        return "plain"

    def utf8proc_nfd(text):
        pointer = lib.utf8proc_NFD(text.encode())
        result = ctypes.string_at(pointer).decode()
        libc.free(pointer)
        return result

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    nfd = normalizers.NFD()
    pre = pre_tokenizers.BertPreTokenizer()

    classes, lowers, no_decomposition = [], [], []
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF or cp == 0xFFFD:
            continue
        c = chr(cp)
        cleaned = clean.normalize_str("a" + c + "b")
        if (cleaned == "a b") != (cp in WHITESPACE and utf8proc_class(cp) != "control"):
            sys.exit(f"whitespace differs at U+{cp:04X}; update is_whitespace()")
        hf_nfd = nfd.normalize_str(c)
        if hf_nfd != utf8proc_nfd(c):
            if hf_nfd != c:
                sys.exit(f"decomposition differs at U+{cp:04X}; only 'none in HF' is supported")
            no_decomposition.append(cp)
        mine = utf8proc_class(cp)
        if cleaned == "ab":
            hf = "control"
        elif hf_nfd == c and strip.normalize_str(c) == "":
            hf = "mark"
        elif hf_nfd != c and mine == "mark":
            hf = "mark"  # never seen after decomposition; keep utf8proc's class
        else:
            pieces = pre.pre_tokenize_str("a" + c + "b")
            hf = "punct" if len(pieces) == 3 and pieces[1][0] == c else "plain"
        if hf != mine:
            classes.append((cp, hf))
        hf_lower = lower.normalize_str(c)
        mine_lower = "i\u0307" if cp == 0x130 else chr(lib.utf8proc_tolower(cp))
        if hf_lower != mine_lower:
            if len(hf_lower) != 1:
                sys.exit(f"multi-character lower case at U+{cp:04X} is not supported")
            lowers.append((cp, ord(hf_lower) - cp))

    def ranges(items):
        out = []
        for cp, value in items:
            if out and out[-1][1] == cp - 1 and out[-1][2] == value:
                out[-1][1] = cp
            else:
                out.append([cp, cp, value])
        return out

    def emit(name, rows, per_line):
        print(f"constexpr {name}[] = {{")
        for start in range(0, len(rows), per_line):
            print("    " + " ".join(rows[start:start + per_line]))
        print("};")

    version = lib.utf8proc_unicode_version().decode()
    print(f"// Generated by scripts/tokenizer_reference.py --cpp-tables against utf8proc (Unicode {version}).")
    emit("CategoryOverride k_category_overrides",
         [f"{{0x{a:X}, 0x{b:X}, CharClass::{k}}}," for a, b, k in ranges(classes)], 3)
    emit("LowercaseOverride k_lowercase_overrides",
         [f"{{0x{a:X}, 0x{b:X}, {d}}}," for a, b, d in ranges(lowers)], 4)
    emit("char32_t k_no_decomposition", [f"0x{cp:X}," for cp in no_decomposition], 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpp-tables", action="store_true", help="print the C++ exception tables and exit")
    parser.add_argument("--model-dir")
    parser.add_argument("--articles")
    parser.add_argument("--out")
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    if args.cpp_tables:
        cpp_tables()
        return
    if not (args.model_dir and args.articles and args.out):
        parser.error("--model-dir, --articles and --out are required")

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
