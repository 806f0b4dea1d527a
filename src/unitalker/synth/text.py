"""Sentence sources for A2F-Synth: word lists and templates per language, pinyin for
Mandarin, and syllables + melodies for the song domain. All sampling is seeded."""

from __future__ import annotations

import numpy as np

_LEXICON: dict[str, dict[str, list[str]]] = {
    "en": {
        "N": ["mother", "baby", "pilot", "window", "garden", "river", "teacher", "bottle", "puppy",
              "market", "photo", "museum", "kitchen", "boat", "moon", "forest", "violin", "bus",
              "umbrella", "paper", "coffee", "mountain", "village", "doctor", "pumpkin", "fish"],
        "V": ["bought", "opened", "painted", "moved", "found", "washed", "followed", "pushed",
              "watched", "fixed", "visited", "carried", "loved", "checked", "shared", "thought about"],
        "A": ["blue", "tiny", "old", "smooth", "famous", "quiet", "purple", "heavy", "bright",
              "warm", "beautiful", "cheap", "strange", "funny", "soft", "huge"],
        "P": ["Maybe", "Yesterday", "On Monday", "Every morning", "Of course", "Before the show"],
        "T": ["{P}, the {A} {N} {V} the {N}.", "The {N} {V} a {A} {N} near the {N}.",
              "Why did the {N} move the {A} {N}?", "{P} my {N} and the {N} {V} the {A} {N}.",
              "Please bring the {A} {N} to the {N} by five.", "We {V} the {N} with a {A} {N}."],
    },
    "es": {
        "N": ["madre", "perro", "ventana", "jardín", "barco", "montaña", "pueblo", "médico",
              "música", "mesa", "libro", "pelota", "camino", "playa", "fuego", "abuela", "queso"],
        "V": ["compró", "abrió", "pintó", "buscó", "miró", "lavó", "llevó", "vendió", "quiso", "tocó"],
        "A": ["azul", "pequeño", "viejo", "bonito", "famoso", "tranquilo", "blanco", "rápido", "suave"],
        "P": ["Ayer", "Por la mañana", "Quizás", "Mañana", "Sin embargo"],
        "T": ["{P} la {N} {V} el {N} {A}.", "El {N} {V} una {N} cerca del {N}.",
              "¿Por qué el {N} {V} la {N} {A}?", "{P}, mi {N} {V} el {N} en la {N}."],
    },
    "de": {
        "N": ["Mutter", "Fenster", "Garten", "Boot", "Berg", "Dorf", "Arzt", "Musik", "Tisch",
              "Buch", "Ball", "Weg", "Strand", "Feuer", "Käse", "Vogel", "Apfel", "Brücke"],
        "V": ["kaufte", "öffnete", "malte", "suchte", "sah", "wusch", "trug", "verkaufte", "fand"],
        "A": ["blaue", "kleine", "alte", "schöne", "berühmte", "ruhige", "weiße", "schnelle"],
        "P": ["Gestern", "Am Morgen", "Vielleicht", "Morgen früh", "Trotzdem"],
        "T": ["{P} kaufte die {A} Mutter ein {N}.", "Der {N} {V} den {A} {N} am {N}.",
              "Warum {V} das {N} die {A} {N}?", "Die {A} {N} {V} den {N} im {N}."],
    },
    "fr": {
        "N": ["mère", "chien", "fenêtre", "jardin", "bateau", "montagne", "village", "médecin",
              "musique", "table", "livre", "balle", "chemin", "plage", "feu", "fromage", "oiseau"],
        "V": ["acheta", "ouvrit", "peignit", "chercha", "regarda", "lava", "porta", "vendit", "trouva"],
        "A": ["bleu", "petit", "vieux", "beau", "célèbre", "calme", "blanc", "rapide", "doux"],
        "P": ["Hier", "Ce matin", "Peut-être", "Demain", "Pourtant"],
        "T": ["{P}, la {N} {V} le {N} {A}.", "Le {N} {V} une {N} près du {N}.",
              "Pourquoi le {N} {V} la {N}?", "{P} mon {N} {V} le {N} dans la {N}."],
    },
}

# Mandarin: pinyin syllables with tone digits (eSpeak voice cmn-latn-pinyin).
_PINYIN = (
    "ni3 hao3 wo3 men2 ta1 shi4 de5 bu4 you3 zai4 ren2 da4 zhong1 guo2 xue2 sheng1 lao3 shi1 "
    "peng2 you3 ma1 ma5 ba4 ba5 chi1 fan4 he1 shui3 kan4 shu1 mai3 cai4 qu4 lai2 hao3 kan4 "
    "jin1 tian1 ming2 tian1 zuo2 tian1 xie4 xie5 dui4 bu5 qi3 mei3 li4 kuai4 le4 gong1 zuo4 "
    "yin1 yue4 dian4 ying3 fei1 ji1 huo3 che1 shan1 shui3 hua1 yuan2 pu3 tong1 hua4 mian4 bao1"
).split()

# Song domain: singable syllables per language and melody scales.
_SONG_SYLLABLES: dict[str, list[str]] = {
    "en": ["la", "love", "my", "moon", "oh", "baby", "fly", "home", "sweet", "dream", "you", "sea"],
    "es": ["la", "mar", "sol", "amor", "mi", "cielo", "luna", "boca", "bella", "vida", "no"],
    "cmn-latn-pinyin": ["la1", "ai4", "ni3", "yue4", "liang5", "ma1", "bo1", "wu3", "mei3", "hua1"],
}
_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)  # major scale degrees (semitones)


def sentence(lang: str, rng: np.random.Generator) -> str:
    """One random sentence in ``lang`` (``en es de fr`` from templates, ``zh`` pinyin)."""
    if lang in ("zh", "cmn"):
        n = int(rng.integers(5, 13))
        sylls = [_PINYIN[int(i)] for i in rng.integers(0, len(_PINYIN), n)]
        # group into "words" of 1-2 syllables separated by spaces, sentence-final period
        return " ".join(sylls) + "."
    lex = _LEXICON[lang]
    tpl = lex["T"][int(rng.integers(len(lex["T"])))]
    out = []
    i = 0
    while i < len(tpl):
        if tpl[i] == "{":
            key = tpl[i + 1]
            words = lex[key]
            out.append(words[int(rng.integers(len(words)))])
            i += 3
        else:
            out.append(tpl[i])
            i += 1
    return "".join(out)


def paragraph(lang: str, rng: np.random.Generator, target_s: float) -> str:
    """Sentences appended until roughly ``target_s`` seconds of speech (~2.6 s each)."""
    n = max(1, round(target_s / 2.6))
    return " ".join(sentence(lang, rng) for _ in range(n))


def song(lang: str, rng: np.random.Generator, n_notes: int) -> tuple[list[str], list[int], list[float]]:
    """A short melody: (syllables, MIDI notes, durations in seconds)."""
    sylls = _SONG_SYLLABLES["cmn-latn-pinyin" if lang in ("zh", "cmn") else lang]
    tonic = int(rng.integers(0, 5))
    degree = int(rng.integers(0, 5))
    notes, durs, words = [], [], []
    for _ in range(n_notes):
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(_SCALE) - 1))
        notes.append(55 + tonic + _SCALE[degree])
        durs.append(float(rng.choice([0.3, 0.45, 0.6, 0.9, 1.2], p=[0.25, 0.3, 0.2, 0.15, 0.1])))
        words.append(sylls[int(rng.integers(len(sylls)))])
    return words, notes, durs
