"""Checking parameters before anything runs (kc.run.params): types, values, YAML, names."""

from __future__ import annotations

import pytest

from kc.run import params


@pytest.mark.parametrize(
    ("name", "value", "default", "expected"),
    [
        ("SEEDS", "abc", [0, 1], r"SEEDS = 'abc': expected a list of integers"),
        ("SEEDS", [0, "x"], [0, 1], r"expected a list of integers"),
        ("EPOCHS", "two", 1, r"EPOCHS = 'two': expected an integer \(like the notebook's default 1\)"),
        ("EPOCHS", 1.5, 1, r"expected an integer"),
        ("EPOCHS", True, 1, r"expected an integer"),
        ("LR", "fast", 0.001, r"LR = 'fast': expected a number"),
        ("DATASET", 10, "fashion-mnist", r"DATASET = 10: expected a string"),
        ("BOTH_DIRECTIONS", "no", False, r"expected true or false"),
        ("LAYERS", ["conv4"], {"alexnet": ["conv4"]}, r"expected a mapping of strings to lists"),
        ("TRAIN_LIMIT", None, 600, r"TRAIN_LIMIT = None: expected an integer"),
    ],
)  # fmt: skip
def test_wrong_types_are_refused(name, value, default, expected) -> None:
    with pytest.raises(ValueError, match=expected):
        params.check_type(name, value, default)


def test_right_types_pass_and_ints_widen_to_float() -> None:
    assert params.check_type("LR", 1, 0.001) == 1.0
    assert type(params.check_type("LR", 1, 0.001)) is float
    assert params.check_type("SEEDS", [3], [0, 1]) == [3]
    assert params.check_type("TRAIN_LIMIT", None, 600, nullable=True) is None
    assert params.check_type("PAIRS", "anything", None) == "anything"  # a None default
    layers = {"vgg16": ["conv4_3"]}
    assert params.check_type("LAYERS", layers, {"alexnet": ["conv4", "conv5"]}) == layers
    nets = [["vgg16", "conv4_3"]]
    assert params.check_type("NETWORKS", nets, [["alexnet", "conv4"]]) == nets


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"DATASET": "cifar10"}, r"DATASET = 'cifar10': expected one of \[.*'fashion-mnist'"),
        ({"TRAIN_LIMIT": -5}, r"TRAIN_LIMIT = -5: expected a positive integer or null"),
        ({"EPOCHS": 0}, r"EPOCHS = 0: expected a positive integer"),
        ({"G_STEPS": 0}, r"G_STEPS = 0: expected a positive integer"),
        ({"FT_LR": -0.1}, r"FT_LR = -0.1: expected a positive number"),
        ({"LAMBDA": -1.0}, r"LAMBDA = -1.0: expected a non-negative number"),
        ({"SEEDS": []}, r"SEEDS = \[\]: expected a non-empty list"),
        ({"SEEDS": [1, 1]}, r"distinct"),
        ({"MIX_DATASETS": ["fashion-mnist", "cifar"]}, r"MIX_DATASETS = 'cifar'"),
        ({"SUBSET_DATASET": "fashion-mnist", "SUBSET": "animals"}, r"SUBSET = 'animals': expected a class subset of fashion-mnist: one of \['garments'\]"),
        ({"LAYERS": {"vgg17": ["conv4_3"]}}, r"LAYERS = 'vgg17': expected one of .*did you mean vgg16"),
        ({"LAYERS": {"vgg16": ["conv9"]}}, r"LAYERS = 'conv9': expected a layer of vgg16: one of \['conv4_3'"),
        ({"NETWORKS": [["resnet18", "conv4"]]}, r"NETWORKS = 'conv4': expected a layer of resnet18"),
        ({"OPTIMIZER": "adamw"}, r"OPTIMIZER = 'adamw': expected one of \['adam', 'sgd'\]"),
        ({"DEVICE": "gpu"}, r"DEVICE = 'gpu'"),
        ({"HEAD_INIT": "random"}, r"HEAD_INIT = 'random'"),
    ],
)  # fmt: skip
def test_bad_values_are_refused(values, expected) -> None:
    with pytest.raises(ValueError, match=expected):
        params.check_values(values)


@pytest.mark.parametrize("profile", ["smoke", "small", "paper"])
def test_shipped_profiles_pass_the_value_checks(profile) -> None:
    from kc.run.runner import load_profile

    params.check_values(load_profile(profile))


def test_yaml_keeps_yes_and_no_as_strings() -> None:
    assert params.read_yaml("A: no\nB: yes\nC: off\nD: on\nE: true\nF: False") == {
        "A": "no", "B": "yes", "C": "off", "D": "on", "E": True, "F": False,
    }  # fmt: skip
    assert params.read_yaml("[1e-3, 1.0e+2, 5, .5]") == [0.001, 100.0, 5, 0.5]


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(ValueError, match=r"has EPOCH \(did you mean EPOCHS\?\), which no notebook"):
        params.check_names(["EPOCH", "SEEDS"], {"EPOCHS", "SEEDS"}, "profile x.yaml")
    with pytest.raises(ValueError, match=r"has ZZZ, which"):
        params.check_names(["ZZZ"], {"EPOCHS"}, "profile x.yaml")
    params.check_names(["SEEDS"], {"SEEDS"}, "profile x.yaml")
