"""One active profile: what a notebook passes to ``config.use_profile`` is what every labutils call
of its kernel acts on, whatever ``$LAB5_PROFILE`` says."""
from __future__ import annotations

import pytest

from labutils import config


@pytest.fixture
def fresh(monkeypatch):
    """No profile chosen yet in this process; ``$LAB5_PROFILE`` says full."""
    monkeypatch.setattr(config, "_active", None)
    monkeypatch.setenv("LAB5_PROFILE", "full")


def test_before_any_choice_the_environment_decides(fresh):
    assert config.current_profile() is config.PROFILES["full"]


def test_the_chosen_profile_wins_over_the_environment(fresh):
    chosen, why = config.use_profile("smoke")
    assert chosen is config.current_profile() is config.PROFILES["smoke"] and why == "chosen explicitly"
    assert config.resolve_profile() == (config.PROFILES["full"], "from $LAB5_PROFILE")  # unchanged


def test_none_chooses_as_resolve_profile_does(fresh):
    assert config.use_profile(None) == (config.PROFILES["full"], "from $LAB5_PROFILE")
    with pytest.raises(ValueError, match="Unknown profile"):
        config.use_profile("huge")
    assert config.current_profile() is config.PROFILES["full"]  # a bad name changes nothing


def test_library_defaults_follow_the_chosen_profile(fresh):
    from labutils import models

    config.use_profile("smoke")
    model = models.transfer_model("mobilenet_025", weights=None)
    assert model.get_layer("conv_base").inputs[0].shape[1] == config.PROFILES["smoke"].transfer_input_size
