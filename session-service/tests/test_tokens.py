from infou_session import tokens


def test_tokens_are_random_prefixed_and_only_their_hash_is_kept() -> None:
    a, b = tokens.new_token(), tokens.new_token()
    assert a != b
    assert a.startswith("st_")
    assert len(a) > 40
    h = tokens.token_hash("secret", a)
    assert a not in h
    assert len(h) == 64
    assert tokens.matches("secret", a, h)
    assert not tokens.matches("secret", b, h)
    assert not tokens.matches("other-secret", a, h)


def test_well_formed() -> None:
    assert tokens.well_formed(tokens.new_token())
    assert not tokens.well_formed("")
    assert not tokens.well_formed("Bearer st_x")
    assert not tokens.well_formed("st_" + "x" * 500)
