from factory.recipes.tinystories import FEATURES, make_seed, rule_checks
from factory.recipes.vocabulary import load_vocabulary, vocabulary_check


def test_vocabulary_is_about_1500_words_split_by_part_of_speech():
    v = load_vocabulary()
    total = len(v.nouns) + len(v.verbs) + len(v.adjectives)
    assert 1300 <= total <= 1800
    assert "dog" in v.nouns and "run" in v.verbs and "happy" in v.adjectives


def test_seeds_are_deterministic_and_vary():
    assert make_seed(7, 3) == make_seed(7, 3)
    seeds = [make_seed(7, i) for i in range(50)]
    assert len({(s["verb"], s["noun"], s["adjective"]) for s in seeds}) > 40
    assert all(set(s["features"]) <= set(FEATURES) and len(s["features"]) <= 3 for s in seeds)
    assert make_seed(8, 3) != make_seed(7, 3)


def test_inflections_count_as_known_words():
    v = load_vocabulary()
    for word in ("dogs", "jumped", "running", "bigger", "happiest", "ran", "mice", "children"):
        assert v.knows(word), word
    assert not v.knows("photosynthesis")


def test_rule_check_measures_vocabulary_share_and_seed_words():
    text = "The happy dog jumped over the photosynthesis."
    checks = vocabulary_check(text, "jump", "dog", "red")
    assert checks["words"] == 7
    assert checks["out_of_vocabulary_share"] == round(1 / 7, 4)
    assert checks["out_of_vocabulary_words"] == ["photosynthesis"]
    assert checks["has_verb"] and checks["has_noun"] and not checks["has_adjective"]
    # the recipe's checks are the vocabulary check plus the repeated 5-gram share (issue 11)
    # and the structural checks of issue 21 (ending, repeats, loops, echo, meta narration)
    assert rule_checks({"verb": "jump", "noun": "dog", "adjective": "red"}, text) == {
        **checks, "repeated_5gram_ratio": 0.0, "ends_cleanly": True, "repeated_sentences": 0, "longest_loop": 1,
        "prompt_echo": [], "meta_narration": []}
